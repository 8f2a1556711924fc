"""comfyui-exemplar: reference-driven diffusion methods as native ComfyUI nodes."""

import importlib
import pkgutil

from comfy_api.latest import ComfyExtension, io

from . import nodes as _nodes_package

WEB_DIRECTORY = "./web"  # web/docs/<node_id>.md: the help panel's page for each node


def _node_modules():
    """Every module of nodes/ that defines NODES (one file per capability)."""
    for info in sorted(pkgutil.iter_modules(_nodes_package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{_nodes_package.__name__}.{info.name}")
        if hasattr(module, "NODES"):
            yield module


class ExemplarExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [node for module in _node_modules() for node in module.NODES]


async def comfy_entrypoint() -> ExemplarExtension:
    return ExemplarExtension()
