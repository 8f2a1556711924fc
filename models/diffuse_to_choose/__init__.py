"""Diffuse to Choose, pure torch: the adapter (hint CNN, UNet-encoder copy, FiLM, projection), hint images."""
