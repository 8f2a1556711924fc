"""Regenerate workflows/*.json from scripts/exemplar_dev/workflow_specs/ and the template titles in
locales/en/main.json (run inside the host venv)."""

import json
import sys

from exemplar_dev import templates
from exemplar_dev.paths import PACK_ROOT, WORKFLOWS_DIR

LOCALE = PACK_ROOT / "locales" / "en" / "main.json"


def render(name: str) -> str:
    return json.dumps(templates.build_template(name), indent=2) + "\n"


def render_index() -> str:
    return json.dumps(templates.template_index(), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    names = argv or templates.template_names()
    for name in names:
        path = WORKFLOWS_DIR / f"{name}.json"
        path.write_text(render(name))
        print(f"wrote {path}")
    LOCALE.parent.mkdir(parents=True, exist_ok=True)
    LOCALE.write_text(render_index())
    print(f"wrote {LOCALE}")


if __name__ == "__main__":
    main(sys.argv[1:])
