"""The UI -> API conversion that the workflow tier relies on."""

import json

import pytest

from exemplar_dev import model_files, templates, workflows
from exemplar_dev.paths import PACK_ROOT
from exemplar_dev.workflow_format import WorkflowError, ui_to_api
from exemplar_dev.workflow_specs import WORKFLOWS


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_shipped_json_is_generated_from_its_spec(comfy, name):
    path = workflows.WORKFLOWS_DIR / f"{name}.json"
    assert path.is_file(), f"run scripts/build_workflows.py to write {path.name}"
    assert json.loads(path.read_text()) == templates.build_template(name), f"{path.name} is stale: rebuild it"


def test_template_titles_are_generated_for_the_frontend(comfy):
    locale = PACK_ROOT / "locales" / "en" / "main.json"
    assert json.loads(locale.read_text()) == templates.template_index(), "locales/en/main.json is stale: rebuild it"
    titles = templates.template_index()["templateWorkflows"]["template"]
    assert set(titles) == {"comfyui-exemplar", "comfyui_exemplar"}
    for folder_titles in titles.values():
        assert set(folder_titles) == set(WORKFLOWS)
        assert all(title[0].isupper() and "_" not in title for title in folder_titles.values())


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
def test_template_links_every_downloadable_file_and_says_what_to_load(comfy, name):
    ui = templates.build_template(name)
    loaders = 0
    for node in ui["nodes"]:
        named = [v for v in node.get("widgets_values") or [] if isinstance(v, str) and v in model_files.BY_NAME]
        expected = [model_files.BY_NAME[v].link() for v in named if model_files.BY_NAME[v].url]
        assert node["properties"].get("models", []) == expected, node["type"]
        for link in expected:
            assert link["url"].startswith("https://") and "/" not in link["name"]
        loaders += bool(named)
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and value.endswith((".safetensors", ".ckpt", ".pth", ".bin")):
                assert value in model_files.BY_NAME or value.startswith("dreambooth/"), f"{value} is not in the table"
    assert loaders >= 1
    (note,) = [n for n in ui["nodes"] if n["type"] == "MarkdownNote"]
    text = note["widgets_values"][0]
    for node in ui["nodes"]:
        for value in node.get("widgets_values") or []:
            if isinstance(value, str) and (value in model_files.BY_NAME or node["type"] == "LoadImage"):
                if node["type"] != "LoadImage" or value.endswith(".png"):
                    assert value in text, f"the note does not mention {value}"
    # laid out left to right, a group per stage, opening at a scale where LiteGraph draws text
    titles = [g["title"].split(". ", 1)[1] for g in ui["groups"]]
    assert titles[0] == templates.LOAD and titles[-1] in (templates.SAVE, templates.SAVE_PASTE_BACK)
    assert (templates.SAVE_PASTE_BACK in titles) == any(n["type"] == "ExemplarPasteBack" for n in ui["nodes"])
    lefts = [g["bounding"][0] for g in ui["groups"]]
    assert lefts == sorted(lefts)
    for g in ui["groups"]:
        x, y, w, h = g["bounding"]
        members = [n for n in ui["nodes"] if x <= n["pos"][0] and n["pos"][0] + n["size"][0] <= x + w]
        assert members, g["title"]
    for node in ui["nodes"]:
        inside = [g for g in ui["groups"] if g["bounding"][0] <= node["pos"][0] <= g["bounding"][0] + g["bounding"][2]]
        assert len(inside) == 1, f"{node['type']} lies in {len(inside)} groups"
    assert templates.MIN_SCALE <= ui["extra"]["ds"]["scale"] <= 1.0


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
