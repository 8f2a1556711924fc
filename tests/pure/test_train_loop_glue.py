"""The checkpoint and run glue of models/common/train_loop.py the pair-dataset trainers share: the training record,
the resume header, the optimizer, the held-out noise."""

import json
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import save_file

from comfyui_exemplar.models.common import train_loop


@dataclass
class Settings(train_loop.TrainSettings):
    k: int = 24
    subject_caption: str = ""


def test_training_record_drops_steps_and_adds_world_fields_and_extra_sorted():
    record = train_loop.training_record(Settings(steps=7, k=3), 2, {"trainer": "cli"}, resolved_block="input_4")
    info = json.loads(record)
    assert "steps" not in info
    assert info["k"] == 3 and info["learning_rate"] == 1e-5 and info["subject_caption"] == ""
    assert info["world_size"] == 2 and info["resolved_block"] == "input_4" and info["trainer"] == "cli"
    assert list(info) == sorted(info)
    # the trainers' files before the shared helper: the same JSON, byte for byte
    before = {k: v for k, v in vars(Settings(steps=7, k=3)).items() if k != "steps"}
    before.update(world_size=2, resolved_block="input_4", trainer="cli")
    assert record == json.dumps(before, sort_keys=True)


def test_extra_metadata_is_applied_last():
    info = json.loads(train_loop.training_record(Settings(), 1, {"world_size": 8}))
    assert info["world_size"] == 8
    assert json.loads(train_loop.training_record(Settings(), 3, None))["world_size"] == 3


def test_step_metadata_holds_the_step_and_the_record():
    meta = train_loop.step_metadata(Settings(), 12, 1, {"trainer": "node"})
    assert meta["exemplar.step"] == "12"
    assert meta["exemplar.training"] == train_loop.training_record(Settings(), 1, {"trainer": "node"})
    assert set(meta) == {"exemplar.step", "exemplar.training"}


def test_resume_step_reads_the_step_or_names_the_file_and_the_trainer(tmp_path):
    path = tmp_path / "a.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"exemplar.step": "40", "exemplar.kind": "x"})
    header = train_loop.file_metadata(path)
    assert header == {"exemplar.step": "40", "exemplar.kind": "x"}
    assert train_loop.resume_step(header, path.name, "files of the test trainer") == 40
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    assert train_loop.file_metadata(bare) == {}
    with pytest.raises(ValueError) as error:
        train_loop.resume_step(train_loop.file_metadata(bare), bare.name, "files of the test trainer")
    assert str(error.value) == (
        "resume_from: bare.safetensors has no 'exemplar.step' in its header; only files of the test trainer can be "
        "resumed"
    )


def test_check_resumable_needs_more_steps_than_the_checkpoint():
    train_loop.check_resumable(0, 1)
    train_loop.check_resumable(4, 5)
    with pytest.raises(ValueError, match=r"resume_from is at step 5; steps must be larger .*\(got 5\)"):
        train_loop.check_resumable(5, 5)


def test_adamw_continues_from_a_saved_state_exactly():
    torch.manual_seed(0)
    target = torch.randn(5)

    def run(weight, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            ((weight - target) ** 2).sum().backward()
            optimizer.step()

    straight = torch.nn.Parameter(torch.zeros(5))
    run(straight, train_loop.adamw([straight], 0.1), 4)
    first = torch.nn.Parameter(torch.zeros(5))
    optimizer = train_loop.adamw([first], 0.1)
    run(first, optimizer, 2)
    resumed = torch.nn.Parameter(first.detach().clone())
    again = train_loop.adamw([resumed], 0.1, optimizer.state_dict())
    assert again.param_groups[0]["lr"] == 0.1
    run(resumed, again, 2)
    assert torch.equal(resumed, straight)
    assert train_loop.adamw([torch.nn.Parameter(torch.zeros(1))], 0.5).state_dict()["state"] == {}


class _Sampling:
    def percent_to_sigma(self, percent):
        return 10.0 * (1 - percent)


def test_held_out_noise_is_the_generator_s_and_one_sigma():
    noise, sigma = train_loop.held_out_noise(torch.Generator().manual_seed(3), (1, 4, 2, 2), _Sampling(), 0.25)
    assert torch.equal(noise, torch.randn((1, 4, 2, 2), generator=torch.Generator().manual_seed(3)))
    assert sigma.shape == (1,) and float(sigma) == 7.5


def test_first_x0_is_the_first_sample_detached():
    denoised = torch.arange(6.0, requires_grad=True).reshape(3, 2)
    x0 = train_loop.first_x0(("batch", denoised))
    assert x0.tolist() == [[0.0, 1.0]] and not x0.requires_grad
