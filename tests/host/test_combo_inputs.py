"""Combo values sent over the API are not checked by ComfyUI 0.3.75 for V3 nodes: each node refuses an unknown
value itself, naming the input and the allowed values, before any work (other inputs None here)."""

import inspect

import pytest

COMBOS = [
    ("ExemplarReferenceEncodeUNet", "crop", {}),
    ("ExemplarReferenceEncodeCLIPVision", "crop", {}),
    ("ExemplarReferenceEncodeCLIPVision", "tokens", {}),
    ("ExemplarDtCImageConditioning", "crop", {}),
    ("ExemplarDualGuidanceKSampler", "sampler_name", {}),
    ("ExemplarDualGuidanceKSampler", "scheduler", {}),
    ("ExemplarStyleContextKSampler", "sampler_name", {}),
    ("ExemplarStyleContextKSampler", "scheduler", {}),
    ("ExemplarDreamBoothClassImages", "sampler_name", {}),
    ("ExemplarDreamBoothClassImages", "scheduler", {}),
    ("ExemplarDtCAdapterSave", "dtype", {"filename_prefix": "exemplar/x"}),
]


def schema_options(cls, input_name):
    return {i.id: i for i in cls.define_schema().inputs}[input_name].options


def call(cls, **given):
    """execute with every other combo at an allowed value and every other input None."""
    combos = {i.id: i.options[0] for i in cls.define_schema().inputs if i.get_io_type() == "COMBO"}
    params = [p for p in inspect.signature(cls.execute).parameters if p != "cls"]
    return cls.execute(**{p: given.get(p, combos.get(p)) for p in params})


@pytest.mark.parametrize(("node_id", "input_name", "others"), COMBOS, ids=[f"{n}-{i}" for n, i, _ in COMBOS])
def test_unknown_combo_value_is_refused_with_the_allowed_values(node, node_id, input_name, others):
    cls = node(node_id)
    options = schema_options(cls, input_name)
    assert len(options) >= 2
    with pytest.raises(ValueError, match=f"^{input_name}: unknown value 'fp64'; expected one of ") as error:
        call(cls, **others, **{input_name: "fp64"})
    assert str(error.value).endswith(", ".join(map(str, options)))
    with pytest.raises(Exception) as error:  # an allowed value passes the check and reaches the (None) inputs
        call(cls, **others, **{input_name: options[0]})
    assert "unknown value" not in str(error.value)
