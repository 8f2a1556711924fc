"""DreamBooth, pure torch: LoRA files, prior-preservation loss, rare-token identifiers."""
