"""Display names reach the frontend's progress header (the locale ComfyUI serves); categories follow the methods;
experimental nodes are flagged."""

import json

import pytest

from exemplar_dev.node_reference import LOCALE, node_locale, schemas

EXPERIMENTAL = {
    # Diffuse to Choose: no adapter weights exist; everything that needs one is experimental until someone trains one
    "ExemplarDtCAdapterCreate",
    "ExemplarDtCAdapterLoader",
    "ExemplarDtCAdapterSave",
    "ExemplarDtCApply",
    "ExemplarDtCImageConditioning",
    "ExemplarDtCTrain",
    # DreamInpainter: no scorer / projection weights exist; the token scoring and the guidance formula are unverified
    "ExemplarLoadTokenScorer",
    "ExemplarLoadTokenProjection",
    "ExemplarTokenSelectTopK",
    "ExemplarDreamInpainterGuider",
}
METHOD_CATEGORIES = {
    "exemplar/paint_by_example",
    "exemplar/dreaminpainter",
    "exemplar/diffuse_to_choose",
    "exemplar/dreamstyler",
    "exemplar/dreambooth",
    "exemplar/guidance",
    "exemplar/evaluation",
    "exemplar/compositing",
}


@pytest.fixture(scope="module")
def node_schemas(comfy):
    return {s.node_id: s for s in schemas(comfy.pack)}


def test_locale_file_is_current(comfy):
    assert LOCALE.read_text(encoding="utf-8") == node_locale(comfy.pack), "locales/en is stale: run `make readme`"


def test_comfyui_serves_every_display_name_to_the_frontend(comfy, node_schemas):
    from app.custom_node_manager import CustomNodeManager

    served = CustomNodeManager().build_translations()["en"]["nodeDefs"]
    for node_id, schema in node_schemas.items():
        assert served[node_id]["display_name"] == schema.display_name, node_id
    assert json.loads(LOCALE.read_text(encoding="utf-8")).keys() == node_schemas.keys()


def test_categories_are_the_methods_and_experimental_nodes_are_flagged(comfy, node_schemas):
    import nodes

    assert {s.category for s in node_schemas.values()} <= METHOD_CATEGORIES
    for node_id in ("ExemplarLoadTokenScorer", "ExemplarLoadTokenProjection", "ExemplarReferenceEncodeUNet"):
        assert node_schemas[node_id].category == "exemplar/dreaminpainter"
    assert node_schemas["ExemplarDreamStylerTrain"].category == "exemplar/dreamstyler"
    assert {i for i, s in node_schemas.items() if s.is_experimental} == EXPERIMENTAL
    info = nodes.NODE_CLASS_MAPPINGS["ExemplarDtCApply"].GET_NODE_INFO_V1()
    assert info["experimental"] is True  # what /object_info tells the frontend (its beta badge)


def test_diffuse_to_choose_is_spelled_out(comfy, node_schemas):
    for schema in node_schemas.values():
        for text in (schema.display_name, schema.description):
            assert "DtC" not in text.replace("Diffuse to Choose (DtC)", ""), (schema.node_id, text)
