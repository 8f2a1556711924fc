"""Telling a weight file's kind from its header or pickle only, and torch's refusal messages without terminal codes."""

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from comfyui_exemplar.models.common import file_probe


def test_safetensors_header_reads_names_and_metadata_without_the_tensors(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file({"w": torch.zeros(1000, 1000), "b": torch.ones(3)}, str(path), metadata={"exemplar.kind": "x"})
    # cut the tensor data away: only the header is read, so the answer does not change
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    (tmp_path / "cut.safetensors").write_bytes(data[: 8 + length] + b"\0" * 16)
    for name in ("a.safetensors", "cut.safetensors"):
        header = file_probe.safetensors_header(tmp_path / name)
        assert header.keys == {"w", "b"} and header.metadata == {"exemplar.kind": "x"}
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    (tmp_path / "tiny").write_bytes(b"12")
    assert file_probe.safetensors_header(tmp_path / "junk.safetensors") is None
    assert file_probe.safetensors_header(tmp_path / "tiny") is None
    assert file_probe.safetensors_header(tmp_path / "missing") is None


def test_the_cache_follows_size_and_modification_time(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file({"first": torch.zeros(2)}, str(path))
    assert file_probe.safetensors_header(path).keys == {"first"}
    save_file({"second": torch.zeros(2), "third": torch.zeros(1)}, str(path))
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert file_probe.safetensors_header(path).keys == {"second", "third"}


def test_pickle_names_are_searched_in_zip_checkpoints_only(tmp_path):
    torch.save({"<s>-T0": torch.zeros(4), "<s>-T1": torch.zeros(4)}, tmp_path / "style.bin")
    torch.save({"string_to_param": {"*": torch.zeros(1, 4)}}, tmp_path / "ti.pt")
    torch.save({"<s>-T0": torch.zeros(4)}, tmp_path / "legacy.bin", _use_new_zipfile_serialization=False)
    assert file_probe.pickle_names_contain(tmp_path / "style.bin", (b"-T0",)) is True
    assert file_probe.pickle_names_contain(tmp_path / "ti.pt", (b"-T0",)) is False
    assert file_probe.pickle_names_contain(tmp_path / "legacy.bin", (b"-T0",)) is None


class Payload:
    pass


def test_a_refused_unpickling_is_described_without_terminal_codes(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"obj": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError) as caught:
        torch.load(path, weights_only=True)
    assert "\x1b[" in str(caught.value)  # torch's own message carries bold on/off codes
    detail = file_probe.unpickling_detail(caught.value)
    assert "\x1b" not in detail
    assert detail == f"it stores a Python object of type {__name__}.Payload, not only tensors"
    assert file_probe.plain_text("\x1b[1mbold\x1b[0m text") == "bold text"
