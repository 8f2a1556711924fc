"""Custom ComfyUI types exchanged between the pack's nodes (names are stable: workflows store them)."""

from comfy_api.latest import io

ExemplarTokensType = io.Custom("EXEMPLAR_TOKENS")
"""Reference tokens [B, N, D] with their grid, token mask and origin (models/tokens.py)."""

ExemplarEncoderType = io.Custom("EXEMPLAR_ENCODER")
"""A reference encoder that is not a stock CLIP_VISION (the Paint-by-Example exemplar encoder)."""

ExemplarTokenScorerType = io.Custom("EXEMPLAR_TOKEN_SCORER")
"""A learned per-token scorer for the top-K selector (DreamInpainter)."""

ExemplarTokenProjectionType = io.Custom("EXEMPLAR_TOKEN_PROJECTION")
"""A learned projection of reference tokens into the text-conditioning space (DreamInpainter)."""

ExemplarAdapterType = io.Custom("EXEMPLAR_ADAPTER")
"""Diffuse-to-Choose adapter: hint adapter, hint encoder copy, FiLM modules, image projection."""

ExemplarHintType = io.Custom("EXEMPLAR_HINT")
"""Diffuse-to-Choose hint: the hint image and the masked source it belongs to."""

ExemplarStagedEmbeddingType = io.Custom("EXEMPLAR_STAGED_EMBEDDING")
"""DreamStyler's T per-stage token embeddings and the token name."""

ExemplarMetricsType = io.Custom("EXEMPLAR_METRICS")
"""Evaluation results: {metric name: one float per image}, for plots and the sweep CLI."""

ExemplarPairDatasetType = io.Custom("EXEMPLAR_PAIR_DATASET")
"""A scanned folder of (image, reference, mask, caption) training pairs (models/common/datasets.py)."""
