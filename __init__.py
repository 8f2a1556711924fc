"""comfyui-exemplar: reference-driven diffusion methods as native ComfyUI nodes."""

import importlib

from comfy_api.latest import ComfyExtension, io

from .nodes import METHODS

WEB_DIRECTORY = "./web"  # web/docs/<node_id>.md: the help panel's page for each node


def _node_list() -> list[type[io.ComfyNode]]:
    return [node for method in METHODS for node in importlib.import_module(f"{__name__}.nodes.{method}").NODES]


class ExemplarExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return _node_list()


async def comfy_entrypoint() -> ExemplarExtension:
    return ExemplarExtension()
