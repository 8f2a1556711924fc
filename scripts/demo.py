"""The pack's main job on the embedded tiny model: run a shipped workflow headless, print the outputs.

Usage: python scripts/demo.py [workflow-name]   (default: the pack's flagship workflow)
"""

import sys
import time

from exemplar_dev import assets, host, workflows
from exemplar_dev.paths import BASE_DIR, WORKFLOWS_DIR

DEFAULT_WORKFLOW = "paint_by_example"


def main(argv):
    name = argv[0] if argv else DEFAULT_WORKFLOW
    path = WORKFLOWS_DIR / f"{name}.json"
    if not path.is_file():
        available = ", ".join(p.stem for p in workflows.shipped())
        sys.exit(f"no workflow {name!r}; available: {available}")
    started = time.perf_counter()
    host.boot()
    assets.prepare()
    outputs = workflows.run(workflows.load_api(path))
    saved = [
        BASE_DIR / "output" / image["subfolder"] / image["filename"]
        for result in outputs.values()
        for image in result.get("images", [])
        if image.get("type") == "output"
    ]
    print(f"ran workflows/{path.name} in {time.perf_counter() - started:.1f} s")
    for file in saved:
        print(f"output image: {file}")
    if not saved:
        sys.exit("the workflow saved no image")


if __name__ == "__main__":
    main(sys.argv[1:])
