"""Every workflows/*.json runs through ComfyUI's executor on the tiny models (a new file is a new test)."""

import numpy as np
import pytest
from PIL import Image

from exemplar_dev import workflows

TEST_STEPS = 2
# over ~8 s each on the 2-core CPU host (pytest --durations); `make test-fast` skips them
SLOW = {
    "diffuse_to_choose_train",
    "diffuse_to_choose_tryon",
    "dreambooth_train_and_sample",
    "dreaminpainter_reference_inpaint",
    "dreaminpainter_train",
    "dreamstyler_style_transfer",
    "dreamstyler_txt2img",
    "dual_guidance_ip2p_style",
    "evaluation_metrics",
    "paint_by_example_finetune",
}


def shrink(prompt: dict) -> dict:
    """Fewer sampling steps; nothing else changes, so the test runs the shipped graph."""
    for node in prompt.values():
        for key in ("steps",):
            if isinstance(node["inputs"].get(key), int):
                node["inputs"][key] = min(node["inputs"][key], TEST_STEPS)
    return prompt


SHIPPED = [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p for p in workflows.shipped()]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_workflow_runs_and_saves_an_image(comfy, path, model_folder, output_folder):
    model_folder("loras")  # the training workflows write here (LoRA, DtC adapter), not into the checkout's .comfy/
    model_folder("exemplar")
    model_folder("checkpoints")  # the Paint-by-Example fine-tuning workflow writes its checkpoint here
    prompt = shrink(workflows.load_api(path))
    outputs = workflows.run(prompt)
    saved = [
        output_folder / image["subfolder"] / image["filename"]
        for node_id, result in outputs.items()
        if prompt[node_id]["class_type"] == "SaveImage"
        for image in result.get("images", [])
    ]
    assert saved, f"{path.name} saved no image"
    for file in saved:
        pixels = np.asarray(Image.open(file)).astype(np.float32)
        assert pixels.ndim == 3 and pixels.shape[0] >= 64 and pixels.shape[1] >= 64
        assert pixels.std() > 0, f"{file.name} is a constant image"
