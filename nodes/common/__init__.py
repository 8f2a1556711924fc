"""What several methods share on the ComfyUI side: custom types, model folders, artefact files."""
