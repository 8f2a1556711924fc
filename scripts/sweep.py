"""Run a workflow over a grid of settings and tabulate its metric nodes: a CSV and a figure.

Usage: python scripts/sweep.py WORKFLOW.json --set NODE.INPUT=V1,V2,... [--set ...] [--out DIR] [--steps N]

WORKFLOW.json is a UI-format workflow (what the frontend saves); it is converted to a prompt and run in this
process through ComfyUI's own executor, once per point of the grid (every combination of the --set values;
values are read as JSON where they parse, else as text). Every evaluation node of the workflow reports its
metrics; the CSV has one row per point with the mean of each metric (column "<node id>:<metric>"), and the
figure plots each metric against the points. Files go to ComfyUI's output folder, exemplar_sweeps/<workflow>/,
unless --out is given. EXEMPLAR_BASE_DIR chooses the ComfyUI base directory (models, inputs, custom_nodes).
"""

from __future__ import annotations

import argparse
import copy
import csv
import itertools
import json
import sys
import time
from pathlib import Path

import cli_boot  # noqa: F401  (scripts/ on sys.path for exemplar_dev)
from exemplar_dev import host, workflows
from exemplar_dev.workflow_format import ui_to_api


def parse_setting(text: str) -> tuple[str, str, list]:
    target, sep, values = text.partition("=")
    node_id, dot, name = target.partition(".")
    if not sep or not dot or not node_id or not name or not values:
        raise ValueError(f"--set {text!r}: expected NODE.INPUT=V1,V2,... (e.g. 9.cfg=1,3,5)")
    parsed = []
    for value in values.split(","):
        try:
            parsed.append(json.loads(value))
        except json.JSONDecodeError:
            parsed.append(value)
    return node_id, name, parsed


def grid(settings: list[tuple[str, str, list]]) -> list[dict[tuple[str, str], object]]:
    keys = [(node, name) for node, name, _ in settings]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values for _, _, values in settings))]


def apply(prompt: dict, point: dict) -> dict:
    prompt = copy.deepcopy(prompt)
    for (node_id, name), value in point.items():
        if node_id not in prompt:
            raise ValueError(f"--set: the workflow has no node {node_id} (it has {sorted(prompt, key=str)})")
        if name not in prompt[node_id]["inputs"]:
            raise ValueError(f"--set: node {node_id} ({prompt[node_id]['class_type']}) has no input {name!r}")
        prompt[node_id]["inputs"][name] = value
    return prompt


def metric_means(outputs: dict) -> dict[str, float | None]:
    row = {}
    for node_id, ui in sorted(outputs.items(), key=lambda item: str(item[0])):
        for record in ui.get("exemplar_metrics", []):
            for name, values in json.loads(record).items():
                row[f"{node_id}:{name}"] = values["mean"]
    return row


def label(point: dict) -> str:
    return " ".join(f"{name}={value}" for (_node, name), value in point.items())


def write_outputs(out_dir: Path, points: list[dict], rows: list[dict]) -> tuple[Path, Path]:
    atomic_file = cli_boot.pack_module("models.common.atomic_file")
    plot = cli_boot.pack_module("models.evaluation.plot")
    setting_columns = [f"{node}.{name}" for node, name in points[0]]
    metric_columns = list(dict.fromkeys(column for row in rows for column in row))

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(setting_columns + metric_columns)
            for point, row in zip(points, rows):
                writer.writerow(list(point.values()) + [row.get(column) for column in metric_columns])

    csv_path = atomic_file.atomic_write(out_dir / "sweep.csv", write_csv)
    series = {c: [float("nan") if r.get(c) is None else float(r[c]) for r in rows] for c in metric_columns}
    figure = plot.sweep_figure(series, [label(p) for p in points], " ".join(setting_columns)) if series else None
    png_path = out_dir / "sweep.png"
    if figure is not None:
        from PIL import Image

        pixels = (figure[0].numpy() * 255).round().astype("uint8")
        atomic_file.atomic_write(png_path, lambda tmp: Image.fromarray(pixels).save(tmp, format="PNG"))
    return csv_path, png_path


def main(argv: list[str]) -> tuple[Path, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workflow", type=Path)
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NODE.INPUT=V1,V2")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=None, help="cap every sampler's steps (a quick look)")
    args = parser.parse_args(argv)
    try:
        settings = [parse_setting(s) for s in args.settings]
    except ValueError as error:
        parser.error(str(error))
    if not settings:
        parser.error("nothing to sweep: give at least one --set NODE.INPUT=V1,V2,...")
    booted = host.boot()
    prompt = ui_to_api(json.loads(args.workflow.read_text()), workflows.input_defs)
    if args.steps:
        for node in prompt.values():
            if isinstance(node["inputs"].get("steps"), int):
                node["inputs"]["steps"] = min(node["inputs"]["steps"], args.steps)
    points = grid(settings)
    out_dir = args.out or Path(booted.folder_paths.get_output_directory()) / "exemplar_sweeps" / args.workflow.stem
    rows = []
    started = time.monotonic()
    for index, point in enumerate(points, 1):
        try:
            outputs = host.run_prompt(apply(prompt, point))
        except ValueError as error:
            sys.exit(f"error: {error}")
        rows.append(metric_means(outputs))
        elapsed = time.monotonic() - started
        shown = ", ".join(f"{k}={v if v is None else round(v, 4)}" for k, v in rows[-1].items())
        print(f"[{index}/{len(points)}] {label(point)}: {shown}  ({elapsed:.1f} s, "
              f"about {elapsed / index * (len(points) - index):.0f} s left)", flush=True)
    if not any(rows):
        sys.exit("error: the workflow has no evaluation node reporting metrics (nothing to tabulate)")
    csv_path, png_path = write_outputs(out_dir, points, rows)
    print(f"wrote {csv_path} and {png_path}")
    return csv_path, png_path


if __name__ == "__main__":
    main(sys.argv[1:])
