"""Compositing, pure torch: paste the source back around an inpainted region (feathered, colour-matched)."""
