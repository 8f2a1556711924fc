"""Draw the pack's registry icon (web/icon.png) from code: a reference card whose shape is carried into the masked
region of a larger picture. Deterministic; rerun after changing the drawing: python scripts/make_icon.py"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 400
OUT = Path(__file__).resolve().parents[1] / "web" / "icon.png"


def draw() -> Image.Image:
    scale = 4  # drawn large, then downsampled for smooth edges
    s = SIZE * scale
    img = Image.new("RGB", (s, s), (24, 28, 38))
    d = ImageDraw.Draw(img)
    u = s / 100

    def box(x0, y0, x1, y1):
        return [x0 * u, y0 * u, x1 * u, y1 * u]

    # the picture being edited, with its masked region (dashed outline) filled by the reference's shape
    d.rounded_rectangle(box(30, 22, 92, 84), radius=6 * u, fill=(58, 96, 140))
    d.rectangle(box(30, 66, 92, 84), fill=(70, 120, 80))
    d.ellipse(box(50, 38, 80, 68), fill=(245, 176, 66))
    for i in range(12):
        a0 = i * 30
        d.arc(box(46, 34, 84, 72), start=a0, end=a0 + 15, fill=(240, 240, 240), width=int(1.6 * u))
    # the reference card, upper left, overlapping the picture
    d.rounded_rectangle(box(8, 10, 40, 42), radius=4 * u, fill=(236, 236, 240), outline=(24, 28, 38), width=int(2 * u))
    d.ellipse(box(14, 16, 34, 36), fill=(245, 176, 66))
    # the arrow from reference to region
    d.line([(38 * u, 40 * u), (50 * u, 50 * u)], fill=(240, 240, 240), width=int(2.2 * u))
    d.polygon([(52 * u, 52 * u), (44.5 * u, 50.5 * u), (50.5 * u, 44.5 * u)], fill=(240, 240, 240))
    return img.resize((SIZE, SIZE), Image.LANCZOS)


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp.png")
    draw().save(tmp, optimize=True)
    tmp.replace(OUT)
    print(OUT, OUT.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
