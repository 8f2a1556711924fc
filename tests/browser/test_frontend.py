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


def test_every_node_has_a_served_help_page(server, comfy):
    info = server.get("/object_info")
    ours = sorted(name for name, node in info.items() if node.get("python_module", "").endswith("comfyui_exemplar"))
    assert ours, "the server lists none of the pack's nodes"
    for node_id in ours:
        page_text = server.get(f"/extensions/comfyui_exemplar/docs/{node_id}.md")
        assert node_id.encode() in page_text or len(page_text) > 200, f"help page of {node_id} looks empty"
