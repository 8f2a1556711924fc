"""DreamStyler, pure torch: staged embeddings and their files, staged textual inversion, context prompts."""
