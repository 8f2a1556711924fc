"""Evaluation: the papers' metrics (CLIP-I/T, DINO, background PSNR/SSIM/MSE/Delta E, Gram style score) as nodes."""

from .nodes import NODES

__all__ = ["NODES"]
