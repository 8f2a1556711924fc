"""Regenerate workflows/*.json from scripts/exemplar_dev/workflow_specs.py (run inside the host venv)."""

import json
import sys

from exemplar_dev import workflows
from exemplar_dev.paths import WORKFLOWS_DIR
from exemplar_dev.workflow_specs import WORKFLOWS


def render(name: str) -> str:
    return json.dumps(workflows.build(WORKFLOWS[name]), indent=2) + "\n"


def main(argv):
    names = argv or sorted(WORKFLOWS)
    for name in names:
        path = WORKFLOWS_DIR / f"{name}.json"
        path.write_text(render(name))
        print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
