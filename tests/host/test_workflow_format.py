"""The UI -> API conversion that the workflow tier relies on."""

import json

import pytest

from exemplar_dev import workflows
from exemplar_dev.workflow_format import WorkflowError, ui_to_api
from exemplar_dev.workflow_specs import WORKFLOWS


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_shipped_json_is_generated_from_its_spec(comfy, name):
    path = workflows.WORKFLOWS_DIR / f"{name}.json"
    assert path.is_file(), f"run scripts/build_workflows.py to write {path.name}"
    assert json.loads(path.read_text()) == workflows.build(WORKFLOWS[name]), f"{path.name} is stale: rebuild it"


def test_widgets_links_and_control_values(comfy):
    spec = [
        {"id": 1, "type": "CheckpointLoaderSimple", "widgets": {"ckpt_name": "x.safetensors"}},
        {"id": 2, "type": "EmptyLatentImage", "widgets": {"width": 64, "height": 64}},
        {"id": 3, "type": "CLIPTextEncode", "widgets": {"text": "a"}, "links": {"clip": (1, 1)}},
        {
            "id": 4,
            "type": "KSampler",
            "widgets": {"seed": 7, "steps": 3, "cfg": 2.5},
            "links": {"model": (1, 0), "positive": (3, 0), "negative": (3, 0), "latent_image": (2, 0)},
        },
        {"id": 5, "type": "LoadImage", "widgets": {"image": "in.png"}},
    ]
    ui = workflows.build(spec)
    ksampler = next(n for n in ui["nodes"] if n["type"] == "KSampler")
    assert ksampler["widgets_values"][:3] == [7, "fixed", 3]  # seed carries its control value
    assert next(n for n in ui["nodes"] if n["type"] == "LoadImage")["widgets_values"] == ["in.png", "image"]
    api = ui_to_api(ui, workflows.input_defs)
    assert api["4"]["inputs"] == {
        "seed": 7, "steps": 3, "cfg": 2.5, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0,
        "model": ["1", 0], "positive": ["3", 0], "negative": ["3", 0], "latent_image": ["2", 0],
    }
    assert api["5"]["inputs"] == {"image": "in.png"}


def test_reroute_bypass_and_unknown_nodes(comfy):
    ui = workflows.build(
        [
            {"id": 1, "type": "EmptyLatentImage"},
            {"id": 2, "type": "LatentUpscaleBy", "links": {"samples": (1, 0)}},
            {"id": 3, "type": "LatentUpscaleBy", "links": {"samples": (2, 0)}},
        ]
    )
    ui["nodes"][1]["mode"] = 4  # bypassed: node 3 must read node 1 directly
    assert ui_to_api(ui, workflows.input_defs)["3"]["inputs"]["samples"] == ["1", 0]
    ui["nodes"][0]["type"] = "NoSuchNode"
    with pytest.raises(WorkflowError, match="unknown node type 'NoSuchNode'"):
        ui_to_api(ui, workflows.input_defs)
