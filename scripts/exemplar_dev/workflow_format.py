"""UI-format workflows (what the ComfyUI frontend saves) <-> API-format prompts (what /prompt runs).

`ui_to_api` converts a saved workflow the way the frontend's graphToPrompt does for plain graphs:
widget values are matched to widget inputs in definition order (a seed with
`control_after_generate` and an `*_upload` combo carry one extra value each), links become
[node_id, slot] references, Reroute and Primitive nodes are resolved, notes are dropped, muted
nodes are removed and bypassed nodes pass their matching input through.

`build_ui_workflow` writes a UI-format workflow from a compact description, laying out the
widget values with the same rules, so shipped workflows are generated, not hand-edited.
"""

from __future__ import annotations

from typing import Callable

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MODE_MUTED, MODE_BYPASSED = 2, 4
IMAGE_NODES = {"LoadImage", "PreviewImage", "SaveImage", "LoadImageMask"}
IMAGE_PREVIEW_HEIGHT = 260

InputDefs = Callable[[str], dict]  # class_type -> INPUT_TYPES() dict


def _is_widget(spec: tuple) -> bool:
    kind = spec[0]
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _extra_values(spec: tuple) -> int:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    extra = 1 if options.get("control_after_generate") else 0
    extra += sum(1 for key, value in options.items() if key.endswith("_upload") and value is True)
    return extra


def widget_layout(input_types: dict) -> list[tuple[str, tuple, int]]:
    """[(name, spec, extra_values)] for every widget input, in the order widgets_values stores them."""
    layout = []
    for section in ("required", "optional"):
        for name, spec in input_types.get(section, {}).items():
            spec = spec if isinstance(spec, tuple) else tuple(spec)
            if _is_widget(spec):
                layout.append((name, spec, _extra_values(spec)))
    return layout


class WorkflowError(ValueError):
    pass


def ui_to_api(workflow: dict, input_defs: InputDefs) -> dict:
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow.get("links", [])}

    def upstream(link_id, want_type=None):
        """(node_id, slot) feeding `link_id`, through reroutes and bypassed nodes; None if muted/absent."""
        link = links[link_id]
        source = nodes[link[1]]
        if source["type"] == "Reroute":
            feed = source["inputs"][0].get("link")
            return None if feed is None else upstream(feed, want_type)
        if source.get("mode") == MODE_MUTED:
            return None
        if source.get("mode") == MODE_BYPASSED:
            link_type = link[5]
            for slot_input in source.get("inputs", []):
                if slot_input.get("link") is not None and slot_input.get("type") == link_type:
                    return upstream(slot_input["link"], link_type)
            return None
        return str(source["id"]), link[2]

    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in VIRTUAL_NODES or node.get("mode") in (MODE_MUTED, MODE_BYPASSED):
            continue
        definition = input_defs(node["type"])
        if definition is None:
            raise WorkflowError(f"node {node['id']}: unknown node type {node['type']!r} (is its pack installed?)")
        values = list(node.get("widgets_values") or [])
        if isinstance(node.get("widgets_values"), dict):
            raise WorkflowError(f"node {node['id']} ({node['type']}): dict widgets_values are not supported")
        inputs: dict = {}
        cursor = 0
        for name, _spec, extra in widget_layout(definition):
            if cursor < len(values):
                inputs[name] = values[cursor]
            cursor += 1 + extra
        for slot_input in node.get("inputs", []):
            link_id = slot_input.get("link")
            if link_id is None:
                continue
            source_node = nodes[links[link_id][1]]
            if source_node["type"] == "PrimitiveNode":
                continue  # its value already sits in this node's widgets_values
            feed = upstream(link_id)
            if feed is not None:
                inputs[slot_input["name"]] = [feed[0], feed[1]]
        prompt[str(node["id"])] = {
            "class_type": node["type"],
            "inputs": inputs,
            "_meta": {"title": node.get("title", node["type"])},
        }
    return prompt


def build_ui_workflow(
    spec: list[dict], input_defs: InputDefs, output_defs: Callable[[str], list[tuple[str, str]]]
) -> dict:
    """UI-format workflow from [{"id", "type", "widgets": {name: value}, "links": {input: (src_id, slot)}, "title"?}].

    Unlisted widgets take their default (a combo its first option); control widgets are "fixed".
    Nodes are placed in columns by their depth in the graph.
    """
    by_id = {item["id"]: item for item in spec}
    depth: dict[int, int] = {}

    def node_depth(node_id):
        if node_id not in depth:
            sources = [src for src, _ in by_id[node_id].get("links", {}).values()]
            depth[node_id] = 1 + max((node_depth(s) for s in sources), default=-1)
        return depth[node_id]

    rows: dict[int, int] = {}  # next free y per column
    link_rows = []
    out_links: dict[tuple[int, int], list[int]] = {}
    for item in spec:
        for name, (src, slot) in item.get("links", {}).items():
            link_id = len(link_rows) + 1
            src_type = output_defs(by_id[src]["type"])[slot][1]
            link_rows.append([link_id, src, slot, item["id"], name, src_type])
            out_links.setdefault((src, slot), []).append(link_id)

    ui_nodes = []
    for order, item in enumerate(spec):
        definition = input_defs(item["type"])
        if definition is None:
            raise WorkflowError(f"unknown node type {item['type']!r}")
        widgets = dict(item.get("widgets", {}))
        values = []
        ui_inputs = []
        for section in ("required", "optional"):
            for name, raw in definition.get(section, {}).items():
                spec_tuple = raw if isinstance(raw, tuple) else tuple(raw)
                is_widget = _is_widget(spec_tuple)
                link_id = None
                if name in item.get("links", {}):
                    link_id = next(row[0] for row in link_rows if row[3] == item["id"] and row[4] == name)
                kind = "COMBO" if isinstance(spec_tuple[0], list) else spec_tuple[0]
                entry = {"name": name, "type": kind, "link": link_id}
                if is_widget:
                    entry["widget"] = {"name": name}
                if is_widget or link_id is not None or section == "required":
                    ui_inputs.append(entry)
                if not is_widget:
                    continue
                options = spec_tuple[1] if len(spec_tuple) > 1 and isinstance(spec_tuple[1], dict) else {}
                if name in widgets:
                    value = widgets.pop(name)
                elif "default" in options:
                    value = options["default"]
                elif isinstance(spec_tuple[0], list) and spec_tuple[0]:
                    value = spec_tuple[0][0]
                elif options.get("options"):
                    value = options["options"][0]
                else:
                    raise WorkflowError(f"node {item['id']} ({item['type']}): no value for widget {name!r}")
                values.append(value)
                if options.get("control_after_generate"):
                    values.append("fixed")
                values.extend("image" for key, flag in options.items() if key.endswith("_upload") and flag is True)
        if widgets:
            raise WorkflowError(f"node {item['id']} ({item['type']}): no widgets named {sorted(widgets)}")
        # link rows store the input name while building; LiteGraph wants the slot index
        outputs = [
            {"name": out_name, "type": out_type, "links": out_links.get((item["id"], slot), []), "slot_index": slot}
            for slot, (out_name, out_type) in enumerate(output_defs(item["type"]))
        ]
        column = node_depth(item["id"])
        sockets = max(sum(1 for entry in ui_inputs if "widget" not in entry), len(outputs))
        height = 40 + 22 * sockets + 26 * len([entry for entry in ui_inputs if "widget" in entry])
        height += IMAGE_PREVIEW_HEIGHT if item["type"] in IMAGE_NODES else 0
        height += 60 * sum(1 for v in values if isinstance(v, str) and item["type"].endswith("TextEncode"))
        top = rows.get(column, 40)
        rows[column] = top + height + 60
        ui_nodes.append(
            {
                "id": item["id"],
                "type": item["type"],
                "pos": [40 + 380 * column, top],
                "size": [330, height],
                "flags": {},
                "order": order,
                "mode": 0,
                "inputs": ui_inputs,
                "outputs": outputs,
                "properties": {"Node name for S&R": item["type"]},
                "widgets_values": values,
                **({"title": item["title"]} if "title" in item else {}),
            }
        )
    for row in link_rows:
        target = next(n for n in ui_nodes if n["id"] == row[3])
        row[4] = next(i for i, entry in enumerate(target["inputs"]) if entry["name"] == row[4])
    return {
        "last_node_id": max(by_id),
        "last_link_id": len(link_rows),
        "nodes": ui_nodes,
        "links": link_rows,
        "groups": [],
        "config": {},
        "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}},
        "version": 0.4,
    }
