"""comfyui-exemplar: reference-driven diffusion methods as native ComfyUI nodes."""

from comfy_api.latest import ComfyExtension, io

from .nodes import hint_image, reference_encode_clip_vision

NODE_MODULES = [reference_encode_clip_vision, hint_image]


class ExemplarExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [node for module in NODE_MODULES for node in module.NODES]


async def comfy_entrypoint() -> ExemplarExtension:
    return ExemplarExtension()
