"""The shipped workflows, described compactly: one module per workflow, named like its JSON file.

Each module defines SPEC = [node, ...] with node = {"id", "type", "widgets": {input: value},
"links": {input: (source_id, output_slot)}, "title"?}. Unlisted widgets take their defaults. Modules named
with a leading underscore hold what several specs share.
`make workflows` (scripts/build_workflows.py) writes workflows/<module name>.json; a test checks
the committed JSON is up to date. Defaults are realistic; the workflow tests shrink step counts.
"""

import importlib
import pkgutil

WORKFLOWS = {
    info.name: importlib.import_module(f"{__name__}.{info.name}").SPEC
    for info in pkgutil.iter_modules(__path__)
    if not info.name.startswith("_")  # helpers the specs share
}
