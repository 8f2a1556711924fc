"""Every node that writes a file checks its name first: a bad name fails before any model, image or tensor is
touched (the other inputs here are None, so any work would fail with a different error)."""

import inspect

import pytest

from exemplar_dev.host import pack_submodule

BAD_NAMES = {
    "": "blank",
    "   ": "blank",
    "a\x00b": "control character",
    "line\nbreak": "control character",
    "/etc/passwd": "absolute path",
    "C:\\windows\\x": "absolute path",
    "../outside": "'..' parts",
    "a/../../b": "'..' parts",
    "a//b": "empty",
    "x" * 201: "201 characters is over the limit of 200",
    "ok/" + "y" * 240: "240 characters",
}


@pytest.fixture
def names():
    return pack_submodule("nodes.common.output_names")


@pytest.mark.parametrize("bad", list(BAD_NAMES), ids=range(len(BAD_NAMES)))
def test_bad_names_are_refused_with_the_input_named(names, bad):
    with pytest.raises(ValueError, match=f"^my_input: .*{BAD_NAMES[bad]}") as error:
        names.check_output_name(bad, "my_input", "folder/name")
    assert len(str(error.value)) < 300


def test_good_names_pass_cleaned(names):
    assert names.check_output_name("  dreambooth/sks_dog ", "lora_name", "x") == "dreambooth/sks_dog"
    assert names.check_output_name("dtc\\adapter", "adapter_name", "x") == "dtc/adapter"
    assert names.check_output_name("z" * 200, "name", "x") == "z" * 200
    assert names.check_output_name("my style", "name", "x", folders=False) == "my style"
    with pytest.raises(ValueError, match="name: a plain file name without folders"):
        names.check_output_name("sub/style", "name", "x", folders=False)


WRITERS = {
    "ExemplarDreamBoothTrain": "lora_name",
    "ExemplarDreamStylerTrain": "name",
    "ExemplarDtCTrain": "adapter_name",
    "ExemplarDtCAdapterSave": "filename_prefix",
}


def nothing_but(node_class, **given):
    params = inspect.signature(node_class.execute).parameters
    return {name: given.get(name) for name in params if name != "cls"}


@pytest.mark.parametrize("node_id", list(WRITERS))
@pytest.mark.parametrize("bad", ["a\x00b", "   ", "../escape", "n" * 250])
def test_each_writing_node_refuses_a_bad_name_before_any_work(node, model_folder, output_folder, node_id, bad):
    for folder in ("loras", "embeddings", "exemplar"):
        model_folder(folder)
    cls = node(node_id)
    input_name = WRITERS[node_id]
    with pytest.raises(ValueError, match=f"^{input_name}: "):
        cls.execute(**nothing_but(cls, **{input_name: bad}, overwrite=False))


def test_pbe_convert_refuses_a_bad_target_name_before_reading(node):
    cls = node("ExemplarPbEConvertCheckpoint")
    for bad in ("../../escape.ckpt", "m" * 230 + ".ckpt", "a\x00.ckpt"):
        with pytest.raises(ValueError, match="^ckpt_name: "):
            cls.execute(ckpt_name=bad, overwrite=False)
