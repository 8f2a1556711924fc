"""Every workflows/*.json runs through ComfyUI's executor on the tiny models (a new file is a new test)."""

import numpy as np
import pytest
from PIL import Image

from exemplar_dev import workflows
from exemplar_dev.paths import BASE_DIR

TEST_STEPS = 2


def shrink(prompt: dict) -> dict:
    """Fewer sampling steps; nothing else changes, so the test runs the shipped graph."""
    for node in prompt.values():
        for key in ("steps",):
            if isinstance(node["inputs"].get(key), int):
                node["inputs"][key] = min(node["inputs"][key], TEST_STEPS)
    return prompt


@pytest.mark.parametrize("path", workflows.shipped(), ids=lambda p: p.stem)
def test_workflow_runs_and_saves_an_image(comfy, path):
    prompt = shrink(workflows.load_api(path))
    outputs = workflows.run(prompt)
    saved = [
        BASE_DIR / "output" / image["subfolder"] / image["filename"]
        for node_id, result in outputs.items()
        if prompt[node_id]["class_type"] == "SaveImage"
        for image in result.get("images", [])
    ]
    assert saved, f"{path.name} saved no image"
    for file in saved:
        pixels = np.asarray(Image.open(file)).astype(np.float32)
        assert pixels.ndim == 3 and pixels.shape[0] >= 64 and pixels.shape[1] >= 64
        assert pixels.std() > 0, f"{file.name} is a constant image"
