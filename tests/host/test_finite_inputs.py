"""FLOAT inputs where NaN or infinity means nothing are refused with the input named, before the node does any
work (the other inputs are None here, so any work would fail with another error)."""

import inspect
import math

import pytest

FLOATS = [
    ("ExemplarReferenceSelfAttention", "weight"),
    ("ExemplarReferenceSelfAttention", "start_percent"),
    ("ExemplarReferenceSelfAttention", "end_percent"),
    ("ExemplarReferenceCrossAttention", "weight"),
    ("ExemplarTokenSelectTopK", "mask_threshold"),
    ("ExemplarPbEInpaintConditioning", "mask_threshold"),
    ("ExemplarDtCApply", "strength"),
    ("ExemplarDtCTrain", "learning_rate"),
    ("ExemplarDtCTrain", "condition_dropout"),
    ("ExemplarDtCTrain", "perceptual_weight"),
    ("ExemplarDreamBoothClassImages", "cfg"),
    ("ExemplarDreamBoothTrain", "learning_rate"),
    ("ExemplarDreamBoothTrain", "prior_loss_weight"),
    ("ExemplarDreamStylerTrain", "flip_probability"),
    ("ExemplarDualGuidanceKSampler", "denoise"),
    ("ExemplarStyleContextKSampler", "denoise"),
    ("ExemplarStyleScore", "patch_fraction"),
]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(("node_id", "input_name"), FLOATS, ids=[f"{n}-{i}" for n, i in FLOATS])
def test_non_finite_float_is_refused_naming_the_input(node, node_id, input_name, value):
    cls = node(node_id)
    params = [p for p in inspect.signature(cls.execute).parameters if p != "cls"]
    assert input_name in params
    schema_inputs = {i.id: i for i in cls.define_schema().inputs}
    assert type(schema_inputs[input_name]).__name__ == "Input" and schema_inputs[input_name].get_io_type() == "FLOAT"
    with pytest.raises(ValueError, match=f"^{input_name}: expected a finite number, got {value!r}$"):
        cls.execute(**{p: None for p in params} | {input_name: value})


def test_a_finite_value_passes_the_check_and_reaches_the_work(node):
    cls = node("ExemplarPbEInpaintConditioning")
    params = [p for p in inspect.signature(cls.execute).parameters if p != "cls"]
    with pytest.raises(Exception) as error:
        cls.execute(**{p: None for p in params} | {"mask_threshold": 0.5})
    assert "finite" not in str(error.value)
