"""comfyui-exemplar: reference-driven diffusion methods as native ComfyUI nodes."""

from comfy_api.latest import ComfyExtension, io

from .nodes import METHODS
from .nodes import (
    compositing,
    diffuse_to_choose,
    dreambooth,
    dreaminpainter,
    dreamstyler,
    evaluation,
    guidance,
    paint_by_example,
)

WEB_DIRECTORY = "./web"  # web/docs/<node_id>.md: the help panel's page for each node

# imported by name above, not loaded from strings: a method package added to nodes.METHODS is imported here too
_PACKAGES = {
    package.__name__.rsplit(".", 1)[-1]: package
    for package in (
        compositing, diffuse_to_choose, dreambooth, dreaminpainter, dreamstyler, evaluation, guidance, paint_by_example
    )
}


def _node_list() -> list[type[io.ComfyNode]]:
    missing = [method for method in METHODS if method not in _PACKAGES]
    if missing:
        raise ImportError(f"nodes.METHODS lists {missing}, which the pack's __init__.py does not import")
    return [node for method in METHODS for node in _PACKAGES[method].NODES]


class ExemplarExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return _node_list()


async def comfy_entrypoint() -> ExemplarExtension:
    return ExemplarExtension()
