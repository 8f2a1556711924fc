"""Shipped workflows as templates: model links, a note saying what to load, a group per stage, an opening view.

`build_template(name)` turns the workflow spec `workflow_specs/<name>.py` (SPEC, TITLE, DESCRIPTION) into the
UI-format JSON in workflows/: the plain graph of `workflows.build`, plus

- on every node whose widget names a file of `model_files`, ComfyUI's `properties.models` link
  (name, url, directory), so the frontend's missing-models panel offers the download;
- a Markdown note, first in the first group, listing the files to load (links, folders, how to make the files
  that have no download) and the example images to replace;
- the nodes placed left to right in groups, one per stage (a spec node's "group", else by its role: loading,
  generating, saving), each group's nodes in columns by their depth inside the group;
- `extra.ds`, the view the frontend restores on opening: the first groups at a legible scale.

`template_index()` gives the titles and descriptions the frontend's template browser shows, as its locale
messages (locales/en/main.json: templateWorkflows.template / templateDescription, keyed by the pack's folder name).
"""

from __future__ import annotations

import importlib

from . import model_files, workflows

LOAD, GENERATE, SAVE = "Load models and images", "Generate", "Decode and save"
SAVE_PASTE_BACK = "Decode, paste the source back, save"
SAVE_TYPES = {"VAEDecode", "SaveImage", "PreviewImage", "ExemplarPasteBack"}
COLUMN, GAP, GROUP_GAP, TOP = 380, 60, 120, 80
NOTE_WIDTH = 330
VIEW = (1600, 1000)  # the browser viewport the opening view is sized for
MIN_SCALE = 0.75  # below about this LiteGraph draws nodes without their text
# the folder names the pack is installed under (registry / git clone, and the dev checkout's link)
PACK_FOLDERS = ("comfyui-exemplar", "comfyui_exemplar")


def spec_module(name: str):
    return importlib.import_module(f"{__package__}.workflow_specs.{name}")


def _files_used(ui: dict) -> list[model_files.ModelFile]:
    seen = []
    for node in ui["nodes"]:
        for value in node.get("widgets_values") or []:
            found = model_files.BY_NAME.get(value) if isinstance(value, str) else None
            if found is not None and found not in seen:
                seen.append(found)
    return seen


def _images_used(ui: dict) -> list[str]:
    return [node["widgets_values"][0] for node in ui["nodes"] if node["type"] == "LoadImage"]


def note_text(title: str, files: list[model_files.ModelFile], images: list[str]) -> str:
    lines = [f"## {title}", "", "### Files to load", ""]
    for f in files:
        where = f"`models/{f.directory}/`"
        if f.url:
            lines.append(f"- [{f.name}]({f.url}) in {where}: {f.what}")
        else:
            lines.append(f"- `{f.name}` in {where}: {f.what}")
    if any(f is model_files.PBE for f in files):
        official = model_files.PBE_OFFICIAL
        stem = model_files.PBE.name.removesuffix(".safetensors")
        lines += [
            "",
            f"Paint-by-Example: download [{official.name}]({official.url}) and save it as "
            f"`models/checkpoints/{stem}.ckpt`, then convert it with the node *Convert Paint-by-Example .ckpt to "
            f".safetensors* (or `python scripts/convert_pbe.py models/checkpoints/{stem}.ckpt`): it writes "
            f"`{model_files.PBE.name}` beside it.",
        ]
    if images:
        lines += ["", "### Images", ""]
        lines += [f"- `{name}`: a tiny example; load your own picture in its Load Image node" for name in images]
    lines += ["", "Where each file comes from, its licence and size: docs/weights.md of the pack."]
    return "\n".join(lines)


def _group_of(item: dict, has_inputs: bool) -> str:
    if "group" in item:
        return item["group"]
    if item["type"] in SAVE_TYPES:
        return SAVE
    return GENERATE if has_inputs else LOAD


def _layout(ui: dict, spec: list[dict], note: dict) -> list[dict]:
    """Place the nodes group by group, left to right; returns the groups."""
    by_id = {n["id"]: n for n in ui["nodes"]}
    items = {item["id"]: item for item in spec}
    group_of = {i: _group_of(item, bool(item.get("links"))) for i, item in items.items()}
    group_of[note["id"]] = LOAD
    order = []
    for name in [group_of[note["id"]], *(group_of[i] for i in items)]:
        if name not in order:
            order.append(name)
    order.sort(key=lambda g: (g != LOAD, g == SAVE))  # loading first, saving last, the rest as listed

    depth: dict[int, int] = {}

    def local_depth(node_id):
        if node_id not in depth:
            sources = [
                s for s, _ in items.get(node_id, {}).get("links", {}).values() if group_of[s] == group_of[node_id]
            ]
            depth[node_id] = 1 + max((local_depth(s) for s in sources), default=-1)
        return depth[node_id]

    groups, x = [], 40
    for gid, name in enumerate(order, start=1):
        members = [note["id"]] if name == group_of[note["id"]] else []
        members += [i for i in items if group_of[i] == name]
        rows: dict[int, int] = {}
        for node_id in members:
            column = 0 if node_id == note["id"] else local_depth(node_id)
            if name == LOAD and by_id[node_id]["type"] == "LoadImage":
                column = 1  # the images beside the models: the first group is not one tall column
            node = by_id[node_id]
            top = rows.get(column, TOP)
            node["pos"] = [x + COLUMN * column, top]
            rows[column] = top + node["size"][1] + GAP
        width = COLUMN * (max(rows) + 1) - (COLUMN - by_id[members[0]]["size"][0])
        height = max(rows.values()) - GAP - TOP
        if name == SAVE and any(by_id[i]["type"] == "ExemplarPasteBack" for i in members):
            name = SAVE_PASTE_BACK
        groups.append(
            {
                "id": gid,
                "title": f"{gid}. {name}",
                "bounding": [x - 20, TOP - 60, width + 40, height + 80],
                "color": "#3f789e",
                "font_size": 24,
                "flags": {},
            }
        )
        x += width + GROUP_GAP
    return groups


def _opening_view(groups: list[dict]) -> dict:
    """Scale and offset that show the graph from its top-left corner, as much as fits at a legible scale."""
    left = min(g["bounding"][0] for g in groups)
    top = min(g["bounding"][1] for g in groups)
    right = max(g["bounding"][0] + g["bounding"][2] for g in groups)
    bottom = max(g["bounding"][1] + g["bounding"][3] for g in groups)
    fit = min(VIEW[0] / (right - left + 40), VIEW[1] / (bottom - top + 40))
    scale = round(min(1.0, max(MIN_SCALE, fit)), 3)
    return {"scale": scale, "offset": [round(20 / scale - left, 1), round(20 / scale - top, 1)]}


def build_template(name: str) -> dict:
    module = spec_module(name)
    ui = workflows.build(module.SPEC)
    files = _files_used(ui)
    for node in ui["nodes"]:
        links = [
            model_files.BY_NAME[v].link()
            for v in node.get("widgets_values") or []
            if isinstance(v, str) and v in model_files.BY_NAME and model_files.BY_NAME[v].url
        ]
        if links:
            node["properties"]["models"] = links
    text = note_text(module.TITLE, files, _images_used(ui))
    note = {
        "id": ui["last_node_id"] + 1,
        "type": "MarkdownNote",
        "title": "Start here: what to load",
        "pos": [0, 0],
        "size": [NOTE_WIDTH, 60 + 20 * sum(1 + len(line) // 42 for line in text.split("\n"))],
        "flags": {},
        "order": len(ui["nodes"]),
        "mode": 0,
        "inputs": [],
        "outputs": [],
        "properties": {},
        "widgets_values": [text],
        "color": "#432",
        "bgcolor": "#653",
    }
    ui["nodes"].append(note)
    ui["last_node_id"] = note["id"]
    ui["groups"] = _layout(ui, module.SPEC, note)
    ui["extra"] = {"ds": _opening_view(ui["groups"])}
    return ui


def template_names() -> list[str]:
    from .workflow_specs import WORKFLOWS

    return sorted(WORKFLOWS)


def template_index() -> dict:
    """The frontend's locale messages for the template browser: a title and a description per template."""
    titles = {n: spec_module(n).TITLE for n in template_names()}
    descriptions = {n: spec_module(n).DESCRIPTION for n in template_names()}
    return {
        "templateWorkflows": {
            "template": {folder: titles for folder in PACK_FOLDERS},
            "templateDescription": {folder: descriptions for folder in PACK_FOLDERS},
        }
    }
