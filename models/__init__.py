"""Pure PyTorch model code of comfyui-exemplar. Nothing in this package imports ComfyUI."""
