"""Diffuse to Choose adapter (models/dtc_adapter.py) on a toy UNet laid out like ComfyUI's UNetModel."""

import copy
import math

import pytest
import torch
from safetensors import safe_open
from torch import nn

from comfyui_exemplar.models.diffuse_to_choose.adapter import (
    FiLM,
    HintEncoder,
    DtCAdapter,
    add_hint_to_input,
    film_index_for_output_block,
    parse_metadata,
    repeat_to_batch,
    save_adapter,
    timestep_embedding,
    unet_skip_channels,
)


class ToyBlock(nn.Module):
    """conv -> + time embedding + pooled context -> SiLU (the (h, emb, context, options) call convention)."""

    def __init__(self, cin, cout, emb_dim, context_dim, stride=1, upsample=False):
        super().__init__()
        self.upsample = upsample
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.ctx = nn.Linear(context_dim, cout)

    def forward(self, h, emb, context, options):
        if self.upsample:
            h = nn.functional.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv(h) + self.emb(emb)[..., None, None] + self.ctx(context.mean(1))[..., None, None]
        return nn.functional.silu(h)


class ToyUNet(nn.Module):
    """Input blocks / middle / output blocks with the skip stack of ComfyUI's UNetModel._forward."""

    def __init__(
        self,
        in_channels=9,
        model_channels=8,
        channel_mult=(1, 2, 4, 4),
        num_res_blocks=2,
        context_dim=12,
        adm_in_channels=None,
    ):
        super().__init__()
        torch.manual_seed(0)
        mc, emb_dim = model_channels, 4 * model_channels
        self.model_channels = mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Linear(adm_in_channels, emb_dim) if adm_in_channels else None
        self.input_blocks = nn.ModuleList([ToyBlock(in_channels, mc, emb_dim, context_dim)])
        skips, ch = [mc], mc
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.input_blocks.append(ToyBlock(ch, mult * mc, emb_dim, context_dim))
                ch = mult * mc
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(ToyBlock(ch, ch, emb_dim, context_dim, stride=2))
                skips.append(ch)
        self.middle_block = ToyBlock(ch, ch, emb_dim, context_dim)
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                skip = skips.pop()
                up = level != len(channel_mult) - 1 and i == 0
                self.output_blocks.append(ToyBlock(ch + skip, mult * mc, emb_dim, context_dim, upsample=up))
                ch = mult * mc
        self.out = nn.Conv2d(ch, 4, 3, padding=1)

    def forward(self, x, t, context, y=None, output_patch=None, record=None):
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        if self.label_emb is not None:
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb, context, {})
            hs.append(h)
        h = self.middle_block(h, emb, context, {})
        if record is not None:
            record["skips"] = [f.clone() for f in hs] + [h.clone()]
        for index, block in enumerate(self.output_blocks):
            hsp = hs.pop()
            if output_patch is not None:
                h, hsp = output_patch(h, hsp, index)
            if h.shape[-2:] != hsp.shape[-2:]:
                h = nn.functional.interpolate(h, size=hsp.shape[-2:], mode="nearest")
            h = block(torch.cat([h, hsp], 1), emb, context, {})
        return self.out(h)


def make_adapter(unet, image_dim=24, context_dim=12, seed=0):
    encoder = HintEncoder(
        copy.deepcopy(unet.time_embed),
        copy.deepcopy(unet.input_blocks),
        copy.deepcopy(unet.middle_block),
        unet.model_channels,
        copy.deepcopy(unet.label_emb),
    )
    skips = [block.conv.out_channels for block in unet.input_blocks] + [unet.middle_block.conv.out_channels]
    adapter = DtCAdapter(
        encoder,
        skips,
        4,
        image_dim,
        context_dim,
        config={"base_arch": "toy", "unet_config": {"model_channels": unet.model_channels}},
    )
    adapter.reset_parameters(seed)
    return adapter


def film_patch(adapter, features, strength=1.0):
    n = adapter.num_input_blocks

    def patch(h, hsp, output_block):
        if output_block == 0:
            h = adapter.modulate(n, h, features[n], strength)
        index = film_index_for_output_block(output_block, n)
        return h, adapter.modulate(index, hsp, features[index], strength)

    return patch


def inputs(batch=2, size=16, in_channels=9, context_dim=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, in_channels, size, size, generator=g),
        torch.tensor([999.0, 500.0][:batch] + [10.0] * max(0, batch - 2)),
        torch.randn(batch, 5, context_dim, generator=g),
        torch.rand(1, size * 8, size * 8, 3, generator=g),
    )


def test_sd15_layout_has_13_film_modules():
    channels = unet_skip_channels(320, [1, 2, 4, 4], 2)
    assert channels == [320] * 4 + [640] * 3 + [1280] * 6
    assert len(channels) == 13
    assert unet_skip_channels(320, [1, 2, 4], [2, 2, 2]) == [320] * 4 + [640] * 3 + [1280] * 3  # SDXL: 10


@pytest.mark.parametrize("mult,adm", [((1, 2, 4, 4), None), ((1, 2, 4), 6)], ids=["sd15_shaped", "sdxl_shaped"])
def test_skip_channels_match_the_unet_and_one_film_per_skip(mult, adm):
    unet = ToyUNet(channel_mult=mult, adm_in_channels=adm)
    adapter = make_adapter(unet)
    x, t, context, _ = inputs()
    y = torch.randn(2, adm) if adm else None
    record = {}
    unet(x, t, context, y, record=record)
    assert [f.shape[1] for f in record["skips"]] == unet_skip_channels(8, list(mult), 2)
    assert len(adapter.film) == len(record["skips"]) == (13 if adm is None else 10)
    for film, feature in zip(adapter.film, record["skips"]):
        assert film.proj.in_channels == feature.shape[1] and film.proj.out_channels == 2 * feature.shape[1]


@pytest.mark.parametrize("mult,adm", [((1, 2, 4, 4), None), ((1, 2, 4), 6)], ids=["sd15_shaped", "sdxl_shaped"])
def test_untrained_adapter_is_exactly_the_identity(mult, adm):
    unet = ToyUNet(channel_mult=mult, adm_in_channels=adm)
    adapter = make_adapter(unet)
    x, t, context, hint = inputs()
    y = torch.randn(2, adm) if adm else None
    with torch.no_grad():
        plain = unet(x, t, context, y)
        features = adapter.hint_features(x, adapter.adapt_hint(hint), 4, t, context, y)
        patched = unet(x, t, context, y, output_patch=film_patch(adapter, features))
    assert torch.equal(plain, patched)


def test_hint_encoder_copy_reproduces_the_unet_encoder_when_the_hint_is_zero():
    unet = ToyUNet()
    adapter = make_adapter(unet)
    x, t, context, hint = inputs()
    record = {}
    with torch.no_grad():
        unet(x, t, context, record=record)
        adapted = adapter.adapt_hint(hint)
        assert adapted.shape == (1, 4, 16, 16) and adapted.abs().max() == 0  # zero last layer
        features = adapter.hint_features(x, adapted, 4, t, context)
    assert len(features) == 13
    for ours, theirs in zip(features, record["skips"]):
        assert torch.equal(ours, theirs)


def test_trained_film_changes_only_its_own_skip_and_follows_the_formula():
    unet = ToyUNet()
    adapter = make_adapter(unet)
    x, t, context, hint = inputs()
    k = 5
    torch.manual_seed(3)
    nn.init.normal_(adapter.film[k].proj.weight, std=0.1)
    nn.init.normal_(adapter.film[k].proj.bias, std=0.1)
    seen = {}

    def recorder(inner):
        def patch(h, hsp, output_block):
            before = hsp.clone()
            h, hsp = inner(h, hsp, output_block)
            seen[output_block] = not torch.equal(before, hsp)
            return h, hsp

        return patch

    with torch.no_grad():
        features = adapter.hint_features(x, adapter.adapt_hint(hint), 4, t, context)
        plain = unet(x, t, context)
        patched = unet(x, t, context, output_patch=recorder(film_patch(adapter, features)))
        skip = unet.input_blocks[0](x, unet.time_embed(timestep_embedding(t, 8)), context, {})
        gamma, beta = adapter.film[0].proj(features[0]).chunk(2, 1)
        torch.testing.assert_close(adapter.film[0](skip, features[0], 0.5), skip * (1 + 0.5 * gamma) + 0.5 * beta)
        feature, h = features[k], torch.randn_like(features[k])
        gamma, beta = adapter.film[k].proj(feature).chunk(2, 1)
        torch.testing.assert_close(
            adapter.modulate(k, h, feature, 0.7), h * (1 + 0.7 * gamma) + 0.7 * beta, rtol=0, atol=0
        )
    assert [block for block, changed in seen.items() if changed] == [len(unet.input_blocks) - 1 - k]
    assert not torch.equal(plain, patched)


def test_film_zero_init_is_exact_for_any_strength():
    film = FiLM(6, 6)
    film.reset_parameters()
    h = torch.randn(2, 6, 4, 4)
    hint = torch.randn(2, 6, 4, 4) * 100
    for strength in (0.0, 1.0, 3.5):
        assert torch.equal(film(h, hint, strength), h)


def test_timestep_embedding_formula():
    t = torch.tensor([0.0, 3.0])
    emb = timestep_embedding(t, 6)
    freqs = [math.exp(-math.log(10000) * i / 3) for i in range(3)]
    expected = torch.tensor([[math.cos(3.0 * f) for f in freqs] + [math.sin(3.0 * f) for f in freqs]])
    torch.testing.assert_close(emb[1:], expected)
    assert torch.equal(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))


def test_film_index_mapping_and_bounds():
    assert [film_index_for_output_block(i, 12) for i in range(12)] == list(range(11, -1, -1))
    with pytest.raises(ValueError, match="output block 12 has no skip feature"):
        film_index_for_output_block(12, 12)


def test_hint_batching_and_channel_errors():
    x = torch.zeros(4, 9, 2, 2)
    hint = torch.arange(2.0)[:, None, None, None].expand(2, 4, 2, 2)
    out = add_hint_to_input(x, hint, 5)
    assert torch.equal(out[:, 5, 0, 0], torch.tensor([0.0, 1, 0, 1]))  # cond chunk, uncond chunk
    assert out[:, :5].abs().max() == 0 and x.abs().max() == 0
    with pytest.raises(ValueError, match="hint has batch 3, which does not divide the model batch 4"):
        repeat_to_batch(torch.zeros(3, 1), 4, "hint")
    with pytest.raises(ValueError, match="outside the model input's 9 channels"):
        add_hint_to_input(x, hint, 6)


def test_image_projection_shape_and_width_error():
    adapter = make_adapter(ToyUNet(), image_dim=24, context_dim=12)
    assert adapter.project_image(torch.randn(2, 257, 24)).shape == (2, 257, 12)
    with pytest.raises(ValueError, match="image tokens have width 16, this adapter projects 24-wide tokens"):
        adapter.project_image(torch.randn(1, 257, 16))


def test_file_layout_and_metadata_round_trip(tmp_path):
    adapter = make_adapter(ToyUNet())
    path = save_adapter(adapter, tmp_path / "a.safetensors", dtype=torch.float16)
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
        assert f.get_tensor("film.12.proj.weight").dtype == torch.float16
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {"hint_adapter", "hint_encoder", "film", "image_projection"}
    assert {f"film.{i}.proj.weight" for i in range(13)} <= keys
    assert "hint_encoder.input_blocks.11.conv.weight" in keys and "hint_encoder.middle_block.conv.weight" in keys
    parsed = parse_metadata(meta)
    assert (
        parsed["skip_channels"] == adapter.skip_channels and parsed["image_dim"] == 24 and parsed["base_arch"] == "toy"
    )
    with pytest.raises(ValueError, match="is not a Diffuse to Choose adapter"):
        parse_metadata({"exemplar.kind": "lora"})
    with pytest.raises(ValueError, match="format version '9'"):
        parse_metadata(dict(meta, **{"exemplar.version": "9"}))


def test_reset_is_deterministic_and_leaves_the_encoder_copy_alone():
    unet = ToyUNet()
    a, b = make_adapter(unet, seed=4), make_adapter(unet, seed=4)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert torch.equal(a.hint_encoder.input_blocks[3].conv.weight, unet.input_blocks[3].conv.weight)
    assert a.hint_adapter.layers[0].weight.abs().max() > 0
