"""Load, build and run shipped workflows against the in-process host."""

from __future__ import annotations

import json
from pathlib import Path

from . import host
from .paths import WORKFLOWS_DIR
from .workflow_format import build_ui_workflow, ui_to_api


def input_defs(class_type: str):
    cls = host.boot().nodes.NODE_CLASS_MAPPINGS.get(class_type)
    return None if cls is None else cls.INPUT_TYPES()


def output_defs(class_type: str) -> list[tuple[str, str]]:
    cls = host.boot().nodes.NODE_CLASS_MAPPINGS[class_type]
    types = list(cls.RETURN_TYPES)
    names = list(getattr(cls, "RETURN_NAMES", None) or types)
    return list(zip(names, types))


def build(spec: list[dict]) -> dict:
    return build_ui_workflow(spec, input_defs, output_defs)


def load_api(path: Path) -> dict:
    return ui_to_api(json.loads(Path(path).read_text()), input_defs)


def shipped() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.json"))


def run(prompt: dict) -> dict:
    return host.run_prompt(prompt)
