"""ComfyUI nodes of comfyui-exemplar (V3 schema), one file per capability."""
