"""DreamInpainter training (token projection + learned scorer, optional LoRA) on the tiny SD1.5 model: identity
untrained, learning, the decoupling regularisation's effect on text sensitivity, files for the loader nodes, resume."""

import pytest
import torch

from exemplar_dev.asset_builders.dtc_training import write_synthetic_pairs
from exemplar_dev.host import pack_submodule

RES = 64  # 8x8 latents
REFERENCE = 64  # 2nd down-sampling stage of the tiny UNet: 4x4 = 16 tokens


def warm_or_cool(image, reference, mask):
    """Full caption (line 1) names the patch's colour cast, which only decoupled samples learn from text."""
    warm = float(reference[..., 0].mean()) > float(reference[..., 2].mean())
    return f"a {'warm' if warm else 'cool'} striped patch on a grey wall\na striped patch"


@pytest.fixture(scope="module")
def trainer(comfy):
    return pack_submodule("nodes.dreaminpainter.trainer")


@pytest.fixture(scope="module")
def pairs(comfy, tmp_path_factory):
    datasets = pack_submodule("models.common.datasets")
    root = tmp_path_factory.mktemp("di_pairs")
    train = write_synthetic_pairs(root / "train", count=6, caption=warm_or_cool)
    held_out = write_synthetic_pairs(root / "held_out", count=4, start=1000, caption=warm_or_cool)
    return datasets.scan_pairs(train), datasets.scan_pairs(held_out)


def settings(trainer, **overrides):
    values = dict(
        steps=2, learning_rate=1e-3, resolution=RES, reference_resolution=REFERENCE, k=4, lora_rank=4, lora_alpha=4.0
    )
    values.update(overrides)
    return trainer.DISettings(**values)


def run(trainer, tiny_sd15, data, **overrides):
    model, clip, vae = tiny_sd15
    keys = ("resume_from", "resume_lora", "checkpoint", "on_step", "on_preview", "scorer", "projection")
    extra = {k: overrides.pop(k) for k in keys if k in overrides}
    return trainer.train_dreaminpainter(model, vae, clip, data, settings(trainer, **overrides), **extra)


def test_untrained_parts_leave_the_base_model_exactly(trainer, tiny_sd15, pairs):
    model, clip, vae = tiny_sd15
    s = settings(trainer)
    x0, denoised, _ = trainer.held_out_predictions(model, vae, clip, pairs[1], s, None, samples=1)[0][0]
    step_generator = pack_submodule("models.common.train_loop").step_generator
    plain_settings = trainer.DISettings(**{**s.__dict__, "flip_probability": 0.0, "decoupling_probability": 0.0})
    g = step_generator(12345, 0)
    batch = trainer.draw_batch(pairs[1], plain_settings, 1, g)
    assert batch.prompts == ["a striped patch"]  # the subject caption (second line)
    noise = torch.randn(1, 4, RES // 8, RES // 8, generator=g)
    sigma = torch.tensor([float(model.get_model_object("model_sampling").percent_to_sigma(0.5))])
    cond = clip.encode_from_tokens(clip.tokenize(batch.prompts[0]), return_dict=True)["cond"]
    noising = pack_submodule("models.common.noising")
    xt = noising.add_noise(x0, noise, sigma)
    conds = model.model.extra_conds(noise=xt, device=xt.device, cross_attn=cond)
    plain = model.model.apply_model(xt, sigma, **{k: v.cond for k, v in conds.items()})
    assert torch.equal(denoised, plain.float())


@pytest.mark.slow
def test_training_learns_and_decoupling_raises_text_sensitivity(trainer, tiny_sd15, pairs):
    """Synthetic task as the DtC test's (the masked box holds the reference's texture), captions naming the
    texture's colour cast in the full caption only. Projection + scorer + LoRA rank 4, lr 3e-3, 40 steps, K = 4 of 16.

    Measured: see the printed numbers (docs/training.md). Learning: held-out x0 error inside the mask, untrained vs
    trained without decoupling; text sensitivity: mean |x0("a warm ...") - x0("a cool ...")| inside the mask, trained
    with decoupling p 0.5 vs without.
    """
    model, clip, vae = tiny_sd15
    train, held_out = pairs
    common = dict(steps=40, learning_rate=3e-3, mask_mode="given", trainable="projection+scorer+lora")
    plain = settings(trainer, decoupling_probability=0.0, **common)
    decoupled = settings(trainer, decoupling_probability=0.5, **common)
    before = trainer.masked_x0_error(model, vae, clip, held_out, plain, None)
    without = trainer.train_dreaminpainter(model, vae, clip, train, plain)
    after = trainer.masked_x0_error(model, vae, clip, held_out, plain, without)
    with_ = trainer.train_dreaminpainter(model, vae, clip, train, decoupled)
    prompts = ("a warm striped patch on a grey wall", "a cool striped patch on a grey wall")
    sensitivity_without = trainer.text_sensitivity(model, vae, clip, held_out, plain, without, prompts)
    sensitivity_with = trainer.text_sensitivity(model, vae, clip, held_out, plain, with_, prompts)
    print(
        f"held-out x0 error inside the mask: untrained {before:.4f}, trained {after:.4f} ({after / before:.3f}); "
        f"text sensitivity inside the mask: without decoupling {sensitivity_without:.5f}, with "
        f"{sensitivity_with:.5f} ({sensitivity_with / sensitivity_without:.2f}x)"
    )
    assert after < 0.9 * before, (before, after)
    assert sensitivity_with > 1.1 * sensitivity_without, (sensitivity_without, sensitivity_with)
    assert not without.projection.is_silent


def test_written_files_load_in_the_loader_nodes(trainer, tiny_sd15, pairs, model_folder, node, comfy):
    result = run(trainer, tiny_sd15, pairs[0], steps=2, learning_rate=1e-2, trainable="projection+scorer+lora")
    folder = model_folder("exemplar")
    loras = model_folder("loras")
    paths = trainer.save_checkpoint(
        folder / "di" / "mine_projection.safetensors", result, loras / "di" / "mine.safetensors"
    )
    projection = node("ExemplarLoadTokenProjection").execute(projection_name="di/mine_projection.safetensors").result[0]
    scorer = node("ExemplarLoadTokenScorer").execute(scorer_name="di/mine_scorer.safetensors").result[0]
    assert torch.equal(projection.proj.weight, result.projection.proj.weight) and not projection.is_silent
    assert torch.equal(scorer.out.weight, result.scorer.out.weight)
    model, clip, _ = tiny_sd15
    lora_name = "di/mine.safetensors"
    patched = comfy.nodes.LoraLoader().load_lora(model, clip, lora_name, 1.0, 0.0)[0]
    assert paths["lora"].is_file() and len(patched.patches) == len(result.lora)  # every LoRA entry maps


@pytest.mark.slow
def test_resume_continues_exactly(trainer, tiny_sd15, pairs, tmp_path):
    straight = run(trainer, tiny_sd15, pairs[0], steps=4, trainable="projection+scorer+lora")
    written = []

    def checkpoint(result):
        written.append(
            trainer.save_checkpoint(tmp_path / "p_projection.safetensors", result, tmp_path / "p.safetensors")
        )

    def stop(done, total, losses):
        if done >= 3:
            raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        run(
            trainer,
            tiny_sd15,
            pairs[0],
            steps=4,
            trainable="projection+scorer+lora",
            checkpoint_every=2,
            checkpoint=checkpoint,
            on_step=stop,
        )
    assert len(written) == 1
    resumed = run(
        trainer,
        tiny_sd15,
        pairs[0],
        steps=4,
        trainable="projection+scorer+lora",
        resume_from=written[0]["projection"],
        resume_lora=written[0]["lora"],
    )
    for a, b in ((straight.projection, resumed.projection), (straight.scorer, resumed.scorer)):
        for key, value in a.state_dict().items():
            assert torch.equal(value, b.state_dict()[key]), key
    for name, pair in straight.lora.items():
        assert torch.equal(pair.up, resumed.lora[name].up), name
    assert [r["loss"] for r in resumed.losses] == [r["loss"] for r in straight.losses[2:]]


def test_an_sdxl_model_is_refused_before_any_work(trainer, tiny_sdxl_inpaint, pairs):
    model, clip, vae = tiny_sdxl_inpaint
    with pytest.raises(ValueError, match=r"model / clip: DreamInpainter training runs on SD1\.x / SD2\.x models"):
        trainer.train_dreaminpainter(model, vae, clip, pairs[0], settings(trainer))


def test_bad_settings_name_the_setting(trainer):
    for bad, message in (
        (dict(decoupling_probability=2.0), "decoupling_probability must be in"),
        (dict(trainable="all"), "trainable must be one of"),
        (dict(k=0), "k must be >= 1"),
        (dict(selection_temperature=0.0), "selection_temperature must be > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            settings(trainer, **bad).validate()
    assert trainer.captions("full one\nsubject\n", "x") == ("full one", "subject")
    assert trainer.captions("only\n", "a dog") == ("only", "a dog")
    assert trainer.captions("only\n", "") == ("only", "only")
