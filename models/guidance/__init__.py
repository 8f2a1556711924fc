"""Guidance, pure torch: the multi-prediction guidance forms."""
