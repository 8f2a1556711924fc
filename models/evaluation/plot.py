"""A comparison image of a sweep: the images in a row with their metric values, and one line chart per metric.

Drawn with Pillow (no plotting library is assumed in a ComfyUI install). Returns IMAGE [1, H, W, 3].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

TILE = 160
CHART_W, CHART_H = 320, 200
MARGIN = 8
LINE_H = 12
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GRID = (210, 210, 210)
SERIES = (31, 119, 180)


def format_value(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def _tile(image: torch.Tensor, size: int) -> Image.Image:
    pixels = (image[..., :3].clamp(0, 1).cpu().float().numpy() * 255).round().astype(np.uint8)
    tile = Image.fromarray(pixels)
    tile.thumbnail((size, size), Image.Resampling.LANCZOS)
    return tile


def _chart(draw: ImageDraw.ImageDraw, font, origin: tuple[int, int], name: str, xs: list, ys: list[float],
           x_label: str) -> None:
    left, top = origin
    plot_l, plot_t = left + 44, top + LINE_H + 4
    plot_r, plot_b = left + CHART_W - 8, top + CHART_H - 2 * LINE_H - 4
    draw.text((left, top), name, fill=INK, font=font)
    draw.rectangle((plot_l, plot_t, plot_r, plot_b), outline=INK)
    finite = [y for y in ys if math.isfinite(y)]
    low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    for k in range(5):
        frac = k / 4
        y = plot_b - frac * (plot_b - plot_t)
        draw.line((plot_l, y, plot_r, y), fill=GRID)
        draw.text((left, y - LINE_H / 2), format_value(low + frac * (high - low)), fill=INK, font=font)
    n = len(ys)
    points = []
    for i, (x, value) in enumerate(zip(xs, ys)):
        px = plot_l + (plot_r - plot_l) * ((i + 0.5) / n)
        draw.text((px - 3 * len(str(x)), plot_b + 2), str(x), fill=INK, font=font)
        if math.isfinite(value):
            py = plot_b - (value - low) / (high - low) * (plot_b - plot_t)
            points.append((px, py))
            draw.ellipse((px - 3, py - 3, px + 3, py + 3), fill=SERIES)
    if len(points) > 1:
        draw.line(points, fill=SERIES, width=2)
    draw.text((plot_l, plot_b + LINE_H + 2), x_label, fill=INK, font=font)


def sweep_figure(metrics: dict[str, list[float]], x_values: list | None = None, x_label: str = "image",
                 images: torch.Tensor | None = None) -> torch.Tensor:
    """metrics {name: one value per sweep point}; x_values label the points (default 0..n-1); images [n, H, W, C]."""
    if not metrics:
        raise ValueError("metrics: nothing to plot (connect at least one metric node)")
    counts = {len(v) for v in metrics.values()}
    if len(counts) != 1:
        raise ValueError(f"metrics have different lengths {sorted(counts)}: every metric needs one value per point")
    n = counts.pop()
    xs = list(x_values) if x_values else list(range(n))
    if len(xs) != n:
        raise ValueError(f"x_values has {len(xs)} entries but the metrics have {n} points")
    if images is not None and images.shape[0] != n:
        raise ValueError(f"images has batch {images.shape[0]} but the metrics have {n} points")
    font = ImageFont.load_default()
    columns = max(1, min(3, len(metrics)))
    chart_rows = math.ceil(len(metrics) / columns)
    label_lines = 1 + len(metrics)
    tiles_h = (TILE + label_lines * LINE_H + MARGIN) if images is not None else 0
    width = max(columns * CHART_W, n * (TILE + MARGIN) if images is not None else 0) + 2 * MARGIN
    height = tiles_h + chart_rows * CHART_H + 2 * MARGIN
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if images is not None:
        for i in range(n):
            x0 = MARGIN + i * (TILE + MARGIN)
            canvas.paste(_tile(images[i], TILE), (x0, MARGIN))
            lines = [f"{x_label} = {xs[i]}"] + [f"{k}: {format_value(v[i])}" for k, v in metrics.items()]
            for j, line in enumerate(lines):
                draw.text((x0, MARGIN + TILE + j * LINE_H), line, fill=INK, font=font)
    for index, (name, values) in enumerate(metrics.items()):
        origin = (MARGIN + (index % columns) * CHART_W, MARGIN + tiles_h + (index // columns) * CHART_H)
        _chart(draw, font, origin, name, xs, [float(v) for v in values], x_label)
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)[None]
