"""Turn the browser tier's graph screenshots (.comfy/screenshots/*.png) into workflows/<name>.jpg thumbnails.

Run through `make thumbnails`, which first runs the browser tests that take the screenshots.
"""

import sys

from PIL import Image

from exemplar_dev.paths import BASE_DIR, WORKFLOWS_DIR

WIDTH = 1200


def main():
    shots = sorted((BASE_DIR / "screenshots").glob("*.png"))
    names = {p.stem for p in WORKFLOWS_DIR.glob("*.json")}
    missing = names - {p.stem for p in shots}
    if missing:
        sys.exit(f"no screenshot for {sorted(missing)}: run the browser tests first (make thumbnails)")
    for shot in shots:
        if shot.stem not in names:
            continue
        image = Image.open(shot).convert("RGB")
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
        target = WORKFLOWS_DIR / f"{shot.stem}.jpg"
        image.save(target, quality=82, optimize=True)
        print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
