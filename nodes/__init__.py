"""ComfyUI nodes of comfyui-exemplar (V3 schema): one package per method, plus `common` for what they share."""

METHODS = (
    "paint_by_example", "dreaminpainter", "diffuse_to_choose", "dreamstyler", "dreambooth", "guidance", "evaluation",
    "compositing",
)
