"""Shared pure helpers: atomic files, artefact headers, the mask convention, image folders."""
