"""The trainers' optimizer state as safetensors (models/common/state_tree.py, train_loop's side file)."""

import json
import math

import pytest
import torch
from safetensors import safe_open

from comfyui_exemplar.models.common import state_tree, train_loop


def trained_adamw(steps: int, seed: int = 0):
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    opt = torch.optim.AdamW(params, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
    for _ in range(steps):
        opt.zero_grad()
        (params[0].square().sum() + params[1].sin().sum()).backward()
        opt.step()
    return params, opt


def continue_training(params, opt, steps: int) -> list[torch.Tensor]:
    for _ in range(steps):
        opt.zero_grad()
        (params[0].square().sum() + params[1].sin().sum()).backward()
        opt.step()
    return [p.detach().clone() for p in params]


def test_adamw_state_round_trips_with_types_kept(tmp_path):
    _, opt = trained_adamw(3)
    state = opt.state_dict()
    path = train_loop.save_optimizer_state(tmp_path / "lora.safetensors", state)
    assert path.name == "lora.safetensors.optimizer-state"
    assert state_tree.is_safetensors_file(path)
    back = train_loop.load_optimizer_state(tmp_path / "lora.safetensors")
    assert sorted(back["state"]) == [0, 1]  # int keys stay ints
    assert back["param_groups"][0]["betas"] == (0.9, 0.99) and isinstance(back["param_groups"][0]["betas"], tuple)
    assert back["param_groups"][0]["params"] == [0, 1]
    for index in (0, 1):
        for name, tensor in state["state"][index].items():
            assert back["state"][index][name].dtype == tensor.dtype
            assert torch.equal(back["state"][index][name], tensor)
    assert {k: v for k, v in back["param_groups"][0].items()} == state["param_groups"][0]


def test_resumed_optimizer_continues_bit_exactly(tmp_path):
    params, opt = trained_adamw(2)
    train_loop.save_optimizer_state(tmp_path / "a.safetensors", opt.state_dict())
    saved_params = [p.detach().clone() for p in params]
    uninterrupted = continue_training(params, opt, 3)

    resumed_params = [torch.nn.Parameter(p.clone()) for p in saved_params]
    resumed = torch.optim.AdamW(resumed_params, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
    resumed.load_state_dict(train_loop.load_optimizer_state(tmp_path / "a.safetensors"))
    for a, b in zip(continue_training(resumed_params, resumed, 3), uninterrupted):
        assert torch.equal(a, b)


def test_file_holds_tensors_as_tensors_and_the_rest_as_json(tmp_path):
    _, opt = trained_adamw(1)
    path = train_loop.save_optimizer_state(tmp_path / "x.safetensors", opt.state_dict())
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        shapes = sorted(tuple(f.get_slice(k).get_shape()) for k in f.keys())
    assert metadata["exemplar.kind"] == "state_tree" and metadata["exemplar.version"] == "1"
    assert json.loads(metadata["exemplar.structure"])  # plain JSON
    # per parameter: step (a 0-d tensor), exp_avg and exp_avg_sq
    assert shapes == sorted([(), (3, 4), (3, 4), (), (5,), (5,)])


def test_odd_values_round_trip(tmp_path):
    state = {"a": (1, 2.5, None, True), 7: [float("inf"), -float("inf"), "s"], "n": float("nan"), "z": 0.1 + 0.2}
    state_tree.save_state_tree(tmp_path / "s", state)
    back = state_tree.load_state_tree(tmp_path / "s")
    assert back["a"] == (1, 2.5, None, True) and back[7] == [math.inf, -math.inf, "s"]
    assert math.isnan(back["n"]) and back["z"] == 0.1 + 0.2


def test_unstorable_values_are_refused_naming_where(tmp_path):
    with pytest.raises(TypeError, match=r"state\['x'\].*object"):
        state_tree.save_state_tree(tmp_path / "s", {"x": object()})
    assert not (tmp_path / "s").exists()


def test_older_pickled_side_file_is_still_read_with_weights_only(tmp_path):
    _, opt = trained_adamw(1)
    torch.save(opt.state_dict(), tmp_path / "old.safetensors.optimizer-state")
    back = train_loop.load_optimizer_state(tmp_path / "old.safetensors")
    assert torch.equal(back["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_unreadable_side_file_is_refused_with_the_path(tmp_path):
    (tmp_path / "bad.safetensors.optimizer-state").write_bytes(b"not a state file at all")
    with pytest.raises(ValueError, match=r"bad\.safetensors\.optimizer-state is neither"):
        train_loop.load_optimizer_state(tmp_path / "bad.safetensors")
    assert train_loop.load_optimizer_state(tmp_path / "missing.safetensors") is None


def test_other_safetensors_file_is_refused_by_its_header(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "m.safetensors.optimizer-state"))
    with pytest.raises(ValueError, match="not a saved training state"):
        train_loop.load_optimizer_state(tmp_path / "m.safetensors")
