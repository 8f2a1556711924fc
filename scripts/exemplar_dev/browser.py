"""Drive ComfyUI's real web frontend in headless Debian Chromium through Playwright."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# first-run dialogs off; text drawn at any zoom (thumbnails show whole graphs); no minimap over the graph
FRONTEND_SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,
    "Comfy.Minimap.Visible": False,
}

APP_READY = (
    "() => window.app !== undefined && window.app.vueAppReady && window.app.graph && window.app.graph.nodes.length > 0"
)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("Debian's chromium is not installed: run scripts/setup_browser.sh")


@contextlib.contextmanager
def frontend_page(server, viewport=(1600, 1000)):
    """A page with the ComfyUI app loaded and ready (first-run dialogs suppressed)."""
    from playwright.sync_api import sync_playwright

    for setting, value in FRONTEND_SETTINGS.items():
        server.post(f"/api/settings/{setting}", value)
    profile = tempfile.mkdtemp(prefix="exemplar-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(server.url, wait_until="domcontentloaded")
                page.wait_for_function(APP_READY, timeout=120_000)
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


LOAD_WORKFLOW = """async (wf) => {
  await window.app.loadGraphData(wf, true, true, null, {showMissingNodesDialog: false});
  const missing = window.app.graph.nodes
      .filter(n => !(n.type in LiteGraph.registered_node_types) || n.has_errors === true)
      .map(n => n.type);
  return missing;
}"""

GRAPH_TO_PROMPT = "async () => JSON.parse(JSON.stringify((await window.app.graphToPrompt()).output))"

SET_WIDGET = """([name, cap]) => {
  for (const node of window.app.graph.nodes) {
    for (const w of node.widgets || []) {
      if (w.name === name && typeof w.value === 'number' && w.value > cap) { w.value = cap; }
    }
  }
}"""

QUEUE_AND_WAIT = """(timeoutMs) => new Promise((resolve, reject) => {
  const api = window.app.api;
  const timer = setTimeout(() => reject(new Error('no execution_success within ' + timeoutMs + ' ms')), timeoutMs);
  const done = (event) => { clearTimeout(timer); cleanup(); resolve(event.detail.prompt_id); };
  const failed = (event) => {
    clearTimeout(timer);
    cleanup();
    reject(new Error('execution_error: ' + JSON.stringify(event.detail).slice(0, 2000)));
  };
  const cleanup = () => {
    api.removeEventListener('execution_success', done);
    api.removeEventListener('execution_error', failed);
  };
  api.addEventListener('execution_success', done);
  api.addEventListener('execution_error', failed);
  window.app.queuePrompt(0, 1);
})"""


def load_workflow(page, workflow: dict) -> list[str]:
    """Load a UI-format workflow; returns the node types the frontend could not resolve."""
    return page.evaluate(LOAD_WORKFLOW, json.loads(json.dumps(workflow)))


def frontend_prompt(page) -> dict:
    """The API-format prompt the frontend itself builds from the loaded graph."""
    return page.evaluate(GRAPH_TO_PROMPT)


def cap_widget(page, name: str, cap: int) -> None:
    page.evaluate(SET_WIDGET, [name, cap])


def queue_and_wait(page, timeout_ms: int = 600_000) -> str:
    return page.evaluate(QUEUE_AND_WAIT, timeout_ms)


HIDE_BANNERS = """() => {
  for (const el of document.querySelectorAll('div')) {
    const banner = /Introducing Nodes 2\\.0/.test(el.textContent || '');
    if (el.children.length < 6 && banner && el.getBoundingClientRect().height < 80) {
      el.style.display = 'none';
    }
  }
}"""


def screenshot_graph(page, path) -> None:
    """Fit the whole graph in view (key '.'), then capture the window."""
    page.evaluate(HIDE_BANNERS)
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
