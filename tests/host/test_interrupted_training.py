"""An interrupt (ComfyUI's cancel, what POST /interrupt sets) in the middle of a training node leaves no partial or
temporary file, keeps the file a previous run wrote byte for byte, and keeps every checkpoint already written whole
(plus, where the node saves one on cancel, the last complete step, whole).
(The Diffuse-to-Choose trainer: test_dtc_train.py::test_resume_continues_exactly_and_cancel_keeps_the_last_checkpoint.)
"""

import contextlib
import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

HERE = Path(__file__).parent


def sibling(name):
    spec = importlib.util.spec_from_file_location(f"_interrupt_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def interrupt_at_progress(value: int):
    """Set ComfyUI's interrupt flag when a progress bar reaches `value` (through the public progress hook)."""
    import comfy.model_management as mm
    import comfy.utils

    previous = comfy.utils.PROGRESS_BAR_HOOK
    seen = []

    def hook(current, total, preview=None, node_id=None):
        seen.append(current)
        if current >= value:
            mm.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            yield seen
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
        mm.interrupt_current_processing(False)


def assert_whole_safetensors(path: Path):
    with safe_open(str(path), "pt") as f:
        for key in f.keys():
            assert torch.isfinite(f.get_tensor(key).float()).all(), (path.name, key)


@pytest.mark.slow
def test_dreambooth_interrupted_keeps_the_old_lora_and_whole_checkpoints(node, tiny_sd15, model_folder):
    dreambooth = sibling("test_dreambooth")
    folder = model_folder("loras")
    dreambooth.train(node, tiny_sd15, "kept", steps=1)
    old = (folder / "kept.safetensors").read_bytes()
    with interrupt_at_progress(3) as seen:
        dreambooth.train(node, tiny_sd15, "kept", steps=6, checkpoint_every=2, overwrite=True)
    assert max(seen) == 3
    assert (folder / "kept.safetensors").read_bytes() == old
    files = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert not [n for n in files if n.startswith(".")], files
    checkpoints = [p for p in folder.rglob("*.safetensors") if p.name != "kept.safetensors"]
    assert checkpoints, files  # the step-2 checkpoint was written before the interrupt
    for path in checkpoints:
        assert_whole_safetensors(path)


@pytest.mark.slow
def test_dreamstyler_interrupted_keeps_both_old_files(node, tiny_sd15_inference, model_folder):
    dreamstyler = sibling("test_dreamstyler_train")
    model, clip, vae = tiny_sd15_inference
    folder = model_folder("embeddings")
    train = node("ExemplarDreamStylerTrain")
    with torch.inference_mode():
        train.execute(**dreamstyler.train_inputs(model, clip, vae, steps=1, name="kept"))
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(old) == ["kept.bin", "kept.safetensors"]
    with torch.inference_mode(), interrupt_at_progress(2) as seen:
        train.execute(**dreamstyler.train_inputs(model, clip, vae, steps=5, name="kept", overwrite=True))
    assert max(seen) == 2
    now = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert {name: now[name] for name in old} == old  # the previous run's files, byte for byte
    # besides them only the cancel's save of the last complete step (nodes/common/progress.py), whole
    assert sorted(set(now) - set(old)) == ["kept_step000002.safetensors"]
    assert_whole_safetensors(folder / "kept_step000002.safetensors")
