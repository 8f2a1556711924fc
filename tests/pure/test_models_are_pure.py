"""models/ must stay importable without ComfyUI (design principle 3)."""

import ast
from pathlib import Path

import pytest

MODELS = Path(__file__).resolve().parents[2] / "models"
HOST_MODULES = {
    "comfy",
    "comfy_api",
    "comfy_extras",
    "comfy_execution",
    "folder_paths",
    "nodes",
    "execution",
    "server",
    "node_helpers",
    "latent_preview",
}


@pytest.mark.parametrize("path", sorted(MODELS.rglob("*.py")), ids=lambda p: str(p.relative_to(MODELS)))
def test_no_comfyui_imports(path):
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & HOST_MODULES, f"{path.relative_to(MODELS)} imports {sorted(imported & HOST_MODULES)}"


@pytest.mark.parametrize("path", sorted(MODELS.rglob("*.py")), ids=lambda p: str(p.relative_to(MODELS)))
def test_relative_imports_stay_inside_models(path):
    depth = len(path.relative_to(MODELS).parts)  # models/x.py: 1, models/<method>/x.py: 2
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            assert node.level <= depth, (
                f"{path.relative_to(MODELS)} imports from outside models/ ({'.' * node.level}{node.module})"
            )
