"""Glue between the pack's pure models and ComfyUI internals (folders, patches, guiders, loaders)."""
