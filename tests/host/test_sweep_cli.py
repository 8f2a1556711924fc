"""scripts/sweep.py: a UI workflow run over a grid of settings, metrics tabulated in a CSV and drawn in a figure."""

import csv
import json

import pytest
from PIL import Image

from exemplar_dev import workflows
from exemplar_dev.assets import SOURCE_IMAGE

SPEC = [
    {"id": 1, "type": "LoadImage", "widgets": {"image": SOURCE_IMAGE}},
    {"id": 2, "type": "ImageBlur", "widgets": {"blur_radius": 1, "sigma": 1.0}, "links": {"image": (1, 0)}},
    {"id": 3, "type": "ExemplarBackgroundPreservation", "links": {"source": (1, 0), "result": (2, 0), "mask": (1, 1)}},
]


@pytest.fixture(scope="module")
def sweep(comfy):
    import importlib.util

    from exemplar_dev.paths import PACK_ROOT

    spec = importlib.util.spec_from_file_location("exemplar_sweep_cli", PACK_ROOT / "scripts" / "sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_writes_one_row_per_point_with_the_nodes_metrics(sweep, node, tmp_path, output_folder, capsys):
    workflow = tmp_path / "blur.json"
    workflow.write_text(json.dumps(workflows.build(SPEC)))
    csv_path, png_path = sweep.main([str(workflow), "--set", "2.blur_radius=1,4", "--set", "2.sigma=0.5,2.0",
                                     "--out", str(tmp_path / "sweep")])
    rows = list(csv.DictReader(csv_path.open()))
    points = [(r["2.blur_radius"], r["2.sigma"]) for r in rows]
    assert points == [("1", "0.5"), ("1", "2.0"), ("4", "0.5"), ("4", "2.0")]
    image, mask = comfy_load(node, SOURCE_IMAGE)
    for row in rows:
        blurred = node("ImageBlur").execute(image=image, blur_radius=int(row["2.blur_radius"]),
                                            sigma=float(row["2.sigma"])).result[0]
        expected = node("ExemplarBackgroundPreservation").execute(source=image, result=blurred, mask=mask).result
        assert float(row["3:psnr_outside"]) == pytest.approx(expected[0], rel=1e-12)
        assert float(row["3:delta_e_inside"]) == pytest.approx(expected[7], rel=1e-12)
    assert float(rows[3]["3:psnr_outside"]) < float(rows[0]["3:psnr_outside"])
    figure = Image.open(png_path)
    assert figure.width > 300 and figure.height > 200
    assert "[4/4] blur_radius=4 sigma=2.0" in capsys.readouterr().out


def comfy_load(node, name):
    image, mask = node("LoadImage")().load_image(name)
    return image, mask


def test_sweep_names_a_missing_node_or_input(sweep, tmp_path):
    workflow = tmp_path / "blur.json"
    workflow.write_text(json.dumps(workflows.build(SPEC)))
    with pytest.raises(SystemExit, match="node 2 \\(ImageBlur\\) has no input 'radius'"):
        sweep.main([str(workflow), "--set", "2.radius=1,2", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="the workflow has no node 9"):
        sweep.main([str(workflow), "--set", "9.cfg=1,2", "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="expected NODE.INPUT=V1,V2"):
        sweep.parse_setting("cfg=1,2")
