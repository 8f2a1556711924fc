"""One module per feature that needs generated assets: each defines `prepare(base_dir: Path)`.

`assets.prepare()` calls every module found here, so a feature adds a file instead of editing
a shared list. Builders must be deterministic and idempotent (skip a file that is up to date).
"""
