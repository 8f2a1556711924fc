"""The pack assigns to no ComfyUI class, method or module attribute outside nodes/common/comfyui_compat.py.

Checked on the syntax tree of every pack file (nodes/ and the root __init__.py):
- no assignment, augmented assignment or deletion whose target is reached from a name bound to a ComfyUI import
  (`comfy.utils.X = ...`, `CFGGuider.predict_noise = ...`);
- no setattr / delattr call;
- no assignment to a method name ComfyUI calls on its objects (`obj.forward = ...`, `tok._try_get_embedding = ...`).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "nodes" / "common" / "comfyui_compat.py"
HOST_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "nodes", "execution", "server",
                "node_helpers", "latent_preview"}
REPLACED_METHODS = {"forward", "_try_get_embedding", "tokenize_with_weights", "encode_token_weights", "process_tokens",
                    "apply_model", "predict_noise", "inner_sample", "sampling_function", "calc_cond_batch",
                    "model_unload", "clone"}
PACK_FILES = sorted([ROOT / "__init__.py", *(ROOT / "nodes").rglob("*.py")])


def comfyui_names(tree: ast.AST) -> set[str]:
    """Names a module binds to ComfyUI modules, classes or functions (relative imports are the pack's own)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in HOST_MODULES:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in HOST_MODULES:
                names.update(alias.asname or alias.name for alias in node.names)
    return names


def root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign):
        found = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        found = [node.target]
    elif isinstance(node, ast.Delete):
        found = list(node.targets)
    else:
        return []
    flat = []
    while found:
        t = found.pop()
        if isinstance(t, (ast.Tuple, ast.List)):
            found.extend(t.elts)
        else:
            flat.append(t)
    return flat


def violations(source: str) -> list[str]:
    tree = ast.parse(source)
    bound = comfyui_names(tree)
    found = []
    for node in ast.walk(tree):
        for target in targets(node):
            if not isinstance(target, (ast.Attribute, ast.Subscript)):
                continue
            if root_name(target) in bound:
                found.append(f"line {node.lineno}: assigns to ComfyUI's {ast.unparse(target)}")
            elif isinstance(target, ast.Attribute) and target.attr in REPLACED_METHODS:
                found.append(f"line {node.lineno}: replaces the method {ast.unparse(target)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", [p for p in PACK_FILES if p != COMPAT], ids=lambda p: str(p.relative_to(ROOT)))
def test_pack_file_assigns_nothing_of_comfyui(path):
    found = violations(path.read_text())
    assert not found, f"{path.relative_to(ROOT)} changes ComfyUI outside nodes/common/comfyui_compat.py: {found}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("import comfy.utils\ncomfy.utils.PROGRESS_BAR_ENABLED = False", "assigns to ComfyUI's comfy.utils.PROGRESS"),
        ("from comfy.samplers import CFGGuider\nCFGGuider.predict_noise = f", "ComfyUI's CFGGuider.predict_noise"),
        ("import comfy.samplers as s\ns.KSampler.SAMPLERS += ['x']", "ComfyUI's s.KSampler.SAMPLERS"),
        ("import comfy.model_management as mm\ndel mm.current_loaded_models[0]", "mm.current_loaded_models[0]"),
        ("tokenizer._try_get_embedding = lookup", "replaces the method tokenizer._try_get_embedding"),
        ("layer.forward, other = f, 1", "replaces the method layer.forward"),
        ("setattr(module, 'weight_function', [])", "setattr(module, 'weight_function', [])"),
    ],
)
def test_checker_finds_each_kind(source, expected):
    found = violations(source)
    assert len(found) == 1 and expected in found[0], found


def test_checker_leaves_the_packs_own_objects_alone():
    source = "from ..common import types\nself.block = block\nresult.optimizer_state = s"
    assert violations(source) == []
    assert COMPAT in PACK_FILES and violations(COMPAT.read_text())  # the compat module does assign
