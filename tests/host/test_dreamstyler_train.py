"""DreamStyler trainer on the tiny SD1.5 model (full CLIP-L, so a step costs seconds on a CPU: few steps)."""

import pytest
import torch

from exemplar_dev.host import pack_submodule
from exemplar_dev.tiny_models import TINY_SD15_NAME


@pytest.fixture(scope="module")
def training(comfy):
    return pack_submodule("nodes.dreamstyler.trainer")


def style_images(count=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(count, size, size, 3, generator=g)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def bits(tensor):
    return tensor.detach().contiguous().view(-1).view(torch.uint8)


def assert_same(before, module):
    """Bit for bit: SD1 checkpoints carry no CLIP text_projection, so ComfyUI leaves that weight
    uninitialised and it may hold NaNs, which torch.equal never calls equal."""
    after = module.state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(bits(before[k]), bits(after[k]))]
    assert not changed, f"{len(changed)} tensors changed: {changed[:5]}"


@pytest.mark.parametrize("layer_idx", [None, -2])
def test_differentiable_encoder_equals_comfyui_encode(tiny_sd15_inference, training, layer_idx):
    _, clip, _ = tiny_sd15_inference
    staged_encoding = pack_submodule("nodes.dreamstyler.staged_encoding")
    clip = clip.clone()
    if layer_idx is not None:
        clip.clip_layer(layer_idx)
    vectors = torch.randn(2, 768, generator=torch.Generator().manual_seed(1)) * 0.05
    prompt = "A painting of a house in the style of <t>"
    with torch.inference_mode(False), torch.no_grad():
        ours = training.DifferentiableTextEncoder(clip)([prompt], "<t>", vectors[None])
        reference = clip.encode_from_tokens(staged_encoding.tokenize_with_vectors(clip, prompt, "<t>", vectors))
    torch.testing.assert_close(ours, reference.float(), rtol=0, atol=2e-5)


def graph_leaves(tensor):
    """Every leaf tensor the autograd graph of `tensor` would accumulate a gradient into."""
    seen, pending, leaves = set(), [tensor.grad_fn], []
    while pending:
        fn = pending.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if hasattr(fn, "variable"):
            leaves.append(fn.variable)
        pending.extend(next_fn for next_fn, _ in fn.next_functions)
    return leaves


def test_gradients_reach_only_the_vectors(tiny_sd15_inference, training):
    """Through the whole training loss (text encoder and UNet): the vectors are the only leaf of the autograd graph,
    and no UNet or CLIP parameter gets a gradient."""
    model, clip, vae = tiny_sd15_inference
    inversion = pack_submodule("models.dreamstyler.staged_inversion")
    settings = inversion.InversionSettings(stages=2, steps=1, batch_size=1, flip_probability=0.0, seed=0)
    with torch.inference_mode(False), torch.enable_grad():
        setup = training.prepare(model, clip, vae, style_images(1), ["a house"], "<g>", settings)
        vectors = setup.init.clone().requires_grad_(True)
        draw = inversion.draw_batch(torch.Generator().manual_seed(0), 1, setup.latents.shape[1:], 1000, setup.settings)
        loss = inversion.batch_loss(
            vectors, draw, setup.latents, setup.flipped, setup.encode, setup.unet, setup.alphas_cumprod, setup.settings
        )
        leaves = graph_leaves(loss)
        loss.backward()
    assert len(leaves) == 1 and leaves[0] is vectors
    assert vectors.grad.abs().sum() > 0
    for module in (model.model.diffusion_model, clip.cond_stage_model):
        assert all(p.grad is None for p in module.parameters())


def train_inputs(model, clip, vae, **overrides):
    inputs = dict(
        model=model, clip=clip, vae=vae, images=style_images(), captions="x", token="<tr1>",
        template="A painting of {caption} in the style of {token}", stages=3, steps=2, learning_rate=0.002,
        batch_size=1, flip_probability=0.5, seed=5, init_word="painting", vectors_per_stage=1, name="test_trained",
        overwrite=False,
    )  # fmt: skip
    return {**inputs, **overrides}


def test_train_node_writes_both_files_leaves_models_untouched_and_repeats(node, tiny_sd15_inference, model_folder):
    model, clip, vae = tiny_sd15_inference
    train = node("ExemplarDreamStylerTrain")
    folder = model_folder("embeddings")
    unet_before = snapshot(model.model.diffusion_model)
    clip_before = snapshot(clip.cond_stage_model)
    inputs = train_inputs(model, clip, vae, images=style_images(2), captions="a red house\na blue boat")
    with torch.inference_mode():
        embedding, token, report = train.execute(**inputs).result
    assert token == "<tr1>" and embedding.stages == 3 and embedding.dim == 768
    assert "wrote test_trained.safetensors and test_trained.bin; 2 steps" in report
    assert_same(unet_before, model.model.diffusion_model)
    assert_same(clip_before, clip.cond_stage_model)

    init = (
        clip.cond_stage_model.clip_l.transformer.get_input_embeddings()
        .weight[clip.tokenize("painting")["l"][0][1][0]]
        .float()
    )
    assert not torch.equal(embedding.vectors[0, 0], init)
    assert (embedding.vectors[:, 0] - init).abs().max() < 0.02  # two AdamW steps of lr 0.002 move each entry <= ~0.004

    loader = node("ExemplarLoadDreamStylerEmbedding")
    for name in ("test_trained.safetensors", "test_trained.bin"):
        loaded, loaded_token, stages = loader.execute(embedding_name=name).result
        assert loaded_token == "<tr1>" and stages == 3 and torch.equal(loaded.vectors, embedding.vectors)
    official = torch.load(folder / "test_trained.bin", weights_only=True)
    assert list(official) == ["<tr1>-T0", "<tr1>-T1", "<tr1>-T2"] and official["<tr1>-T0"].shape == (768,)

    with pytest.raises(ValueError, match="already exist .* enable overwrite"):
        train.execute(**inputs)
    with torch.inference_mode():
        again, _, _ = train.execute(**{**inputs, "overwrite": True}).result
    assert torch.equal(again.vectors, embedding.vectors)


@pytest.mark.slow
def test_loss_goes_down_on_the_tiny_model(tiny_sd15_inference, training):
    """The loss of a fixed set of training draws is lower with the trained vectors than with the initial ones."""
    model, clip, vae = tiny_sd15_inference
    inversion = pack_submodule("models.dreamstyler.staged_inversion")
    settings = inversion.InversionSettings(
        stages=2, steps=6, learning_rate=0.02, batch_size=1, flip_probability=0.0, seed=11
    )
    with torch.inference_mode(False), torch.enable_grad():
        setup = training.prepare(model, clip, vae, style_images(1, seed=3), ["a house"], "<ld>", settings)
        vectors, losses = setup.run()
        generator = torch.Generator().manual_seed(settings.seed)
        draws = [inversion.draw_batch(generator, 1, setup.latents.shape[1:], 1000, setup.settings) for _ in range(6)]
        with torch.no_grad():

            def total(v):
                return sum(
                    inversion.batch_loss(
                        v,
                        d,
                        setup.latents,
                        setup.flipped,
                        setup.encode,
                        setup.unet,
                        setup.alphas_cumprod,
                        setup.settings,
                    ).item()
                    for d in draws
                )

            before, after = total(setup.init), total(vectors)
    assert losses[0] == pytest.approx(
        inversion.batch_loss(
            setup.init,
            draws[0],
            setup.latents,
            setup.flipped,
            setup.encode,
            setup.unet,
            setup.alphas_cumprod,
            setup.settings,
        ).item(),
        rel=1e-5,
    )
    assert after < before, (before, after)


def test_cancel_stops_training(node, tiny_sd15_inference, model_folder):
    import comfy.model_management as mm

    model, clip, vae = tiny_sd15_inference
    folder = model_folder("embeddings")
    mm.interrupt_current_processing(True)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            node("ExemplarDreamStylerTrain").execute(**train_inputs(model, clip, vae, steps=100, name="test_cancelled"))
    finally:
        mm.interrupt_current_processing(False)
    assert list(folder.iterdir()) == []


def test_bad_inputs(tiny_sd15_inference, training):
    model, clip, vae = tiny_sd15_inference
    inversion = pack_submodule("models.dreamstyler.staged_inversion")
    settings = inversion.InversionSettings(stages=2, steps=1)
    with pytest.raises(ValueError, match="one line per image \\(3\\) or a single line"):
        training.prepare(model, clip, vae, style_images(3), ["a", "b"], "<x>", settings)
    with pytest.raises(ValueError, match="token must be one word"):
        training.prepare(model, clip, vae, style_images(1), ["a"], "two words", settings)
    with pytest.raises(ValueError, match="name: a plain file name without folders"):
        training.check_target("/tmp", "../x", False)


@pytest.mark.slow
def test_cli_trains_and_writes_loadable_files(comfy, tmp_path):
    import subprocess
    import sys

    from PIL import Image

    from exemplar_dev.paths import PACK_ROOT, comfyui_dir

    Image.fromarray((style_images(1, 40)[0].numpy() * 255).astype("uint8")).save(tmp_path / "style.png")
    checkpoint = comfy.folder_paths.get_full_path_or_raise("checkpoints", TINY_SD15_NAME)
    command = [
        sys.executable,
        str(PACK_ROOT / "scripts" / "dreamstyler_train.py"),
        "--comfyui",
        str(comfyui_dir()),
        "--cpu",
        "--checkpoint",
        checkpoint,
        "--images",
        str(tmp_path / "style.png"),
        "--captions",
        "a field",
        "--token",
        "<cli>",
        "--stages",
        "2",
        "--steps",
        "1",
        "--resolution",
        "32",
        "--out-dir",
        str(tmp_path),
        "--name",
        "cli_style",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step 1/1" in result.stdout and "wrote" in result.stdout
    se = pack_submodule("models.dreamstyler.staged_embedding")
    ours, official = se.load(tmp_path / "cli_style.safetensors"), se.load(tmp_path / "cli_style.bin")
    assert ours.token == official.token == "<cli>" and ours.stages == 2 and torch.equal(ours.vectors, official.vectors)
    assert ours.metadata["steps"] == "1" and ours.base == "sd1"
