"""What the training nodes show while they run (status, loss, previews) and what a cancel keeps, through ComfyUI's own
progress hook and interrupt flag (nodes/common/progress.py)."""

import logging

import pytest
import torch

from exemplar_dev.host import pack_submodule


@pytest.fixture
def progress_hook(comfy):
    """Every (value, total, preview) ComfyUI's progress bar reports; `interrupt_at` cancels at that value."""
    import comfy.model_management as mm
    import comfy.utils

    calls = []
    state = {"interrupt_at": None}

    def hook(value, total, preview, node_id=None):
        calls.append((value, total, preview))
        if value == state["interrupt_at"]:
            mm.interrupt_current_processing(True)  # what the frontend's cancel button does

    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        yield calls, state
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
        mm.interrupt_current_processing(False)


def db_train(node, base, name, **overrides):
    """A few DreamBooth steps on two flat colour images (8x8 latents), no class images."""
    model, clip, vae = base
    images = torch.tensor([[0.8, 0.2, 0.1], [0.1, 0.3, 0.9]])[:, None, None, :].expand(2, 64, 64, 3).contiguous()
    inputs = {
        **dict(model=model, clip=clip, vae=vae, instance_images=images, instance_prompt="a sks dog"),
        **dict(class_prompt="a dog", lora_name=name, steps=3, learning_rate=1e-3, rank=4, alpha=4.0),
        **dict(prior_loss_weight=0.0, batch_size=1, grad_accumulation=1, train_text_encoder=False, resolution=64),
        **dict(training_seed=0, training_dtype="fp32", checkpoint_every=0, resume_from="none"),
        **dict(gradient_checkpointing=False),
        **overrides,
    }
    return node("ExemplarDreamBoothTrain").execute(**inputs).result


def csv_losses(csv):
    return [(int(row.split(",")[0]), float(row.split(",")[1])) for row in csv.strip().splitlines()[1:]]


def style_inputs(model, clip, vae, **overrides):
    images = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    inputs = {
        **dict(model=model, clip=clip, vae=vae, images=images, captions="x", token="<tr1>", stages=3, steps=2),
        **dict(template="A painting of {caption} in the style of {token}", learning_rate=0.002, batch_size=1),
        **dict(flip_probability=0.5, seed=5, init_word="painting", vectors_per_stage=1, name="test_trained"),
        **dict(overwrite=False),
        **overrides,
    }
    return inputs


def training_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "comfyui_exemplar.training"]


def weights(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_unchanged(before, module):
    after = module.state_dict()
    def raw(tensor):
        return tensor.reshape(-1).view(torch.uint8)

    changed = [k for k in before if not torch.equal(raw(before[k]), raw(after[k]))]
    assert not changed, changed[:3]


def test_progress_object_reports_each_step_and_saves_on_cancel(progress_hook):
    progress_module = pack_submodule("nodes.common.progress")
    calls, state = progress_hook
    saved = []
    progress = progress_module.TrainingProgress("Test", 5, save_partial=lambda s: saved.append(s) or f"x/{s}")
    assert progress.preview_every == 1
    progress.status("loading")
    image = torch.rand(1, 16, 24, 3)
    progress.step(1, 0.5, image=image, snapshot=lambda: "at1")
    state["interrupt_at"] = 2
    with pytest.raises(progress_module.TrainingInterrupted) as caught:
        progress.step(2, 0.25, image=lambda: image, snapshot=lambda: "at2")
    assert saved == ["at2"] and caught.value.saved == "x/at2"
    assert "cancelled after step 2/5" in str(caught.value) and "x/at2" in str(caught.value)
    assert [(v, t) for v, t, _ in calls] == [(1, 5), (2, 5)]
    kind, picture, size = calls[0][2]
    assert kind == "JPEG" and picture.size == (24, 16) and size == 512
    assert progress.texts[:3] == ["Test: loading", "Test: step 1/5, loss 0.5000", "Test: step 2/5, loss 0.2500"]
    # a cancel before the first step has nothing to save
    with pytest.raises(progress_module.TrainingInterrupted, match="nothing was saved"):
        progress.cancelled(0, lambda: "never")
    assert saved == ["at2"]
    assert progress_module.default_preview_every(1000) == 50


def test_dreambooth_shows_status_loss_and_latent_previews(node, tiny_sd15, model_folder, progress_hook, caplog):
    calls, _ = progress_hook
    model_folder("loras")
    with caplog.at_level(logging.DEBUG, logger="comfyui_exemplar.training"):
        csv = db_train(node, tiny_sd15, "test_progress/db")[3]
    lines = training_lines(caplog)
    assert lines[:3] == [
        "DreamBooth: encoding 2 instance images",
        "DreamBooth: loading the model for training",
        "DreamBooth: training from step 0 to 3",
    ]
    assert lines[3:] == [f"DreamBooth: step {step}/3, loss {loss:.4f}" for step, loss in csv_losses(csv)]
    assert [(v, t) for v, t, _ in calls] == [(1, 3), (2, 3), (3, 3)]
    for _, _, preview in calls:  # Latent2RGB of the 8x8 x0 prediction (previews are off in this host's args)
        assert preview[0] == "JPEG" and preview[1].size == (8, 8)


@pytest.mark.slow
def test_dreambooth_cancel_saves_the_last_complete_step(node, tiny_sd15, model_folder, progress_hook):
    import comfy.utils

    model, clip, _ = tiny_sd15
    loras = model_folder("loras")
    _, state = progress_hook
    state["interrupt_at"] = 2
    unet_before, clip_before = weights(model.model.diffusion_model), weights(clip.cond_stage_model)
    errors = pack_submodule("nodes.common.progress")
    with pytest.raises(errors.TrainingInterrupted) as caught:
        db_train(node, tiny_sd15, "test_progress/cancelled", steps=5)
    name = "test_progress/cancelled_step000002.safetensors"
    assert f"saved to loras/{name}" in str(caught.value)
    assert not (loras / "test_progress/cancelled.safetensors").exists()
    lora, metadata = comfy.utils.load_torch_file(str(loras / name), return_metadata=True)
    assert metadata["exemplar.step"] == "2" and metadata["exemplar.kind"] == "dreambooth_lora"
    assert (loras / (name + ".optimizer-state")).is_file()
    lora_model, _ = node("LoraLoader")().load_lora(model, clip, name, 1.0, 1.0)  # the stock loader takes it
    assert len(lora_model.patches) > 0
    assert_unchanged(unet_before, model.model.diffusion_model)
    assert_unchanged(clip_before, clip.cond_stage_model)
    # and it resumes: three more steps to 5
    resumed = db_train(node, tiny_sd15, "test_progress/resumed", steps=5, resume_from=name)
    assert resumed[3].count("\n") == 3


def test_dreamstyler_cancel_saves_a_loadable_embedding(node, tiny_sd15_inference, model_folder, progress_hook, caplog):
    model, clip, vae = tiny_sd15_inference
    folder = model_folder("embeddings")
    calls, state = progress_hook
    state["interrupt_at"] = 2
    errors = pack_submodule("nodes.common.progress")
    with caplog.at_level(logging.INFO, logger="comfyui_exemplar.training"):
        with pytest.raises(errors.TrainingInterrupted) as caught:
            node("ExemplarDreamStylerTrain").execute(**style_inputs(model, clip, vae, steps=6, name="test_cut"))
    assert "saved to embeddings/test_cut_step000002.safetensors" in str(caught.value)
    assert "DreamStyler training: encoding 1 images, loading the model for training" in training_lines(caplog)
    assert sorted(p.name for p in folder.iterdir()) == ["test_cut_step000002.safetensors"]
    assert calls[0][2][1].size == (4, 4)  # the latent preview of the 32x32 training image's x0
    embedding, token, _ = node("ExemplarLoadDreamStylerEmbedding").execute("test_cut_step000002.safetensors").result
    assert token == "<tr1>" and embedding.stages == 3 and embedding.metadata["steps"] == "2"
