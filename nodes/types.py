"""Custom ComfyUI types exchanged between the pack's nodes (names are stable: workflows store them)."""

from comfy_api.latest import io

ExemplarTokensType = io.Custom("EXEMPLAR_TOKENS")
