"""Every workflows/*.json runs through ComfyUI's executor on the tiny models (a new file is a new test)."""

import numpy as np
import pytest
from PIL import Image

from exemplar_dev import workflows

TEST_STEPS = 2
# over ~8 s each on the 2-core CPU host (pytest --durations); `make test-fast` skips them
SLOW = {
    "diffuse_to_choose_sdxl_tryon",
    "diffuse_to_choose_train",
    "diffuse_to_choose_tryon",
    "dreambooth_train_and_sample",
    "dreambooth_sdxl_train_and_sample",
    "dreaminpainter_reference_inpaint",
    "dreaminpainter_sdxl_reference_inpaint",
    "dreaminpainter_train",
    "dreamstyler_style_transfer",
    "dreamstyler_txt2img",
    "dreamstyler_sdxl_txt2img",
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


@pytest.mark.slow
def test_dreambooth_workflow_trains_and_samples_in_one_queue(comfy, model_folder, output_folder):
    """No node reads the LoRA file before the trainer writes it: the loras folder starts empty."""
    import folder_paths

    loras = model_folder("loras")
    path = next(p for p in workflows.shipped() if p.stem == "dreambooth_train_and_sample")
    prompt = shrink(workflows.load_api(path))
    listed = set(folder_paths.get_filename_list("loras"))
    for node in prompt.values():
        named = {v for v in node["inputs"].values() if isinstance(v, str)} & listed
        assert not named, f"{node['class_type']} reads {named} before the trainer writes it"
    outputs = workflows.run(prompt)
    assert (loras / "dreambooth" / "sks_dog.safetensors").is_file()
    saved = [n for n, r in outputs.items() if prompt[n]["class_type"] == "SaveImage" and r.get("images")]
    assert saved


INPAINTING = ["paint_by_example", "dreaminpainter_reference_inpaint", "diffuse_to_choose_tryon", "hint_image_inpaint"]


def _saved(outputs, node_id, output_folder):
    image = outputs[node_id]["images"][0]
    return np.asarray(Image.open(output_folder / image["subfolder"] / image["filename"])).astype(np.float64)


def _psnr(a, b):
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.slow
@pytest.mark.parametrize("name", INPAINTING)
def test_inpainting_workflow_keeps_the_background_exactly(comfy, name, model_folder, output_folder):
    """PSNR outside the mask between the source and the decoded sample (finite) and the saved result (infinite).

    The source is saved by a SaveImage too, so both sides go through the same 8-bit quantisation.
    """
    import nodes as comfy_nodes

    model_folder("loras")
    model_folder("exemplar")
    prompt = shrink(workflows.load_api(next(p for p in workflows.shipped() if p.stem == name)))
    (paste_id,) = [i for i, n in prompt.items() if n["class_type"] == "ExemplarPasteBack"]
    paste = prompt[paste_id]["inputs"]
    (save_id,) = [i for i, n in prompt.items() if n["class_type"] == "SaveImage"]
    assert prompt[save_id]["inputs"]["images"] == [paste_id, 0], "the paste-back is the last step before SaveImage"
    source_id = paste["source"][0]
    assert paste["mask"] == [source_id, 1] and prompt[source_id]["class_type"] == "LoadImage"
    for suffix, link in (("raw", paste["image"]), ("source", paste["source"])):
        prompt[f"test_{suffix}"] = {
            "class_type": "SaveImage", "inputs": {"images": link, "filename_prefix": f"test/{name}_{suffix}"}
        }
    outputs = workflows.run(prompt)
    result, raw, source = (_saved(outputs, i, output_folder) for i in (save_id, "test_raw", "test_source"))
    mask = comfy_nodes.LoadImage().load_image(prompt[source_id]["inputs"]["image"])[1]
    outside = (mask[0] <= 0.5).numpy()
    assert outside.mean() > 0.3  # the figure below is over a large part of the image
    before, after = _psnr(raw[outside], source[outside]), _psnr(result[outside], source[outside])
    print(f"{name}: PSNR outside the mask {before:.2f} dB before the paste-back, {after} dB after")
    assert np.isfinite(before) and after == float("inf")
    assert not np.array_equal(result[~outside], source[~outside])  # the generated region is kept
