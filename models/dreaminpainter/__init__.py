"""DreamInpainter, pure torch: reference tokens, top-K selection, learned scorer and projection, reference attention."""
