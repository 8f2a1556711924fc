"""The pack as a user meets it: ComfyUI's real server and web frontend in headless Chromium.

For every workflows/*.json: load it through the frontend, check that every node type resolves,
that the frontend's own UI->API conversion gives exactly the prompt our converter gives (so no
widget value was dropped, shifted or rejected), queue it (steps capped), wait for completion and
check the saved image through the history API. A screenshot of each graph lands in
.comfy/screenshots/ (`make screenshots` copies them next to the workflows as thumbnails).
"""

import json

import pytest

from exemplar_dev import workflows
from exemplar_dev.paths import BASE_DIR

TEST_STEPS = 2
SCREENSHOTS = BASE_DIR / "screenshots"


@pytest.fixture(scope="module")
def server(comfy):
    from exemplar_dev.server import running_server

    with running_server() as running:
        yield running


@pytest.fixture(scope="module")
def page(server):
    from exemplar_dev.browser import frontend_page

    with frontend_page(server) as opened:
        yield opened


def strip_meta(prompt: dict) -> dict:
    return {node: {"class_type": v["class_type"], "inputs": v["inputs"]} for node, v in prompt.items()}


@pytest.mark.parametrize("path", workflows.shipped(), ids=lambda p: p.stem)
def test_workflow_loads_converts_and_runs_in_the_frontend(server, page, path):
    from exemplar_dev import browser

    workflow = json.loads(path.read_text())
    missing = browser.load_workflow(page, workflow)
    assert missing == [], f"{path.name}: the frontend cannot resolve node types {missing}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot_graph(page, SCREENSHOTS / f"{path.stem}.png")

    ours = strip_meta(workflows.load_api(path))
    theirs = strip_meta(browser.frontend_prompt(page))
    assert theirs == ours, f"{path.name}: the frontend's prompt differs from ours"

    browser.cap_widget(page, "steps", TEST_STEPS)
    prompt_id = browser.queue_and_wait(page)
    history = server.get(f"/history/{prompt_id}")[prompt_id]
    assert history["status"]["status_str"] == "success"
    images = [
        image
        for output in history["outputs"].values()
        for image in output.get("images", [])
        if image["type"] == "output"
    ]
    assert images, f"{path.name} saved no image"
    for image in images:
        data = server.get(f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type=output")
        assert data[:8] == b"\x89PNG\r\n\x1a\n"


def test_workflows_are_listed_as_templates(server):
    templates = server.get("/api/workflow_templates")
    assert sorted(templates.get("comfyui_exemplar", [])) == sorted(p.stem for p in workflows.shipped())
    first = workflows.shipped()[0]
    served = server.get(f"/api/workflow_templates/comfyui_exemplar/{first.name}")
    assert served == json.loads(first.read_text())
    # readable titles and descriptions, as the template browser's locale messages
    from exemplar_dev.templates import spec_module

    messages = server.get("/i18n")["en"]["templateWorkflows"]
    for path in workflows.shipped():
        assert messages["template"]["comfyui_exemplar"][path.stem] == spec_module(path.stem).TITLE
        assert messages["templateDescription"]["comfyui_exemplar"][path.stem] == spec_module(path.stem).DESCRIPTION


def test_every_node_has_a_served_help_page(server, comfy):
    info = server.get("/object_info")
    ours = sorted(name for name, node in info.items() if node.get("python_module", "").endswith("comfyui_exemplar"))
    assert ours, "the server lists none of the pack's nodes"
    for node_id in ours:
        page_text = server.get(f"/extensions/comfyui_exemplar/docs/{node_id}.md")
        assert node_id.encode() in page_text or len(page_text) > 200, f"help page of {node_id} looks empty"


MISSING_MODELS_SHOWN = """async (wf) => {
  await window.app.loadGraphData(wf, true, true, null, {showMissingNodesDialog: false});
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline) {
    const dialog = [...document.querySelectorAll('.p-dialog')].find(d => /Missing Models/.test(d.innerText));
    if (dialog) { return dialog.innerText; }
    await new Promise(r => setTimeout(r, 100));
  }
  return null;
}"""

# Closing is asynchronous (the dialog animates out, and a late missing-models check can reopen it): keep closing
# until no dialog has been seen for half a second; returns whether the page ended with no dialog.
CLOSE_DIALOGS = """async () => {
  const deadline = Date.now() + 10000;
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    const open = document.querySelectorAll('.p-dialog');
    if (open.length) {
      quietSince = Date.now();
      for (const button of document.querySelectorAll('.p-dialog .p-dialog-close-button')) { button.click(); }
    } else if (Date.now() - quietSince > 500) {
      return true;
    }
    await new Promise(r => setTimeout(r, 50));
  }
  return false;
}"""

GRAPH_MODEL_LINKS = """() => window.app.graph.nodes
    .filter(n => n.properties && n.properties.models)
    .map(n => ({type: n.type, models: n.properties.models, widgets: (n.widgets || []).map(w => w.value)}))"""


def _renamed(workflow: dict, prefix: str) -> tuple[dict, list[str]]:
    """The workflow with every linked model file renamed (widget and link), as on an install that lacks them."""
    copy = json.loads(json.dumps(workflow))
    names = []
    for node in copy["nodes"]:
        for link in node.get("properties", {}).get("models", []):
            node["widgets_values"] = [prefix + v if v == link["name"] else v for v in node["widgets_values"]]
            names.append(prefix + link["name"])
            link["name"] = prefix + link["name"]
    return copy, names


@pytest.mark.parametrize("path", workflows.shipped(), ids=lambda p: p.stem)
def test_templates_offer_their_model_downloads_in_the_missing_models_panel(server, page, path):
    from exemplar_dev import browser

    workflow = json.loads(path.read_text())
    assert page.evaluate(CLOSE_DIALOGS), "a dialog of an earlier test would not close"
    # with the (tiny) files present under their names: the links are on the loaded graph, no panel opens
    assert browser.load_workflow(page, workflow) == []
    links = page.evaluate(GRAPH_MODEL_LINKS)
    expected = [(n["type"], n["properties"]["models"]) for n in workflow["nodes"] if "models" in n["properties"]]
    assert [(n["type"], n["models"]) for n in links] == expected
    assert all(m["name"] in n["widgets"] for n in links for m in n["models"])
    assert page.evaluate(MISSING_MODELS_SHOWN.replace("10000", "1000"), workflow) is None
    if not expected:
        return
    # on an install without them, the frontend lists every one with its folder
    renamed, names = _renamed(workflow, "not_downloaded_")
    text = page.evaluate(MISSING_MODELS_SHOWN, renamed)
    assert page.evaluate(CLOSE_DIALOGS), f"{path.name}: the missing-models panel would not close"
    assert text is not None, f"{path.name}: no missing-models panel"
    for name in names:
        assert name in text, f"{path.name}: {name} not offered in the missing-models panel"
