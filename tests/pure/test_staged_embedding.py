import math
import pickle

import pytest
import torch

from comfyui_exemplar.models.dreamstyler import staged_embedding as se
from exemplar_dev.oracles import stage_timestep_range


def official_dict(token="<sks1>", stages=6, dim=768, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {f"{token}-T{k}": torch.randn(dim, generator=g) for k in range(stages)}


def sd1_log_sigmas():
    """SD1's discrete schedule (scaled-linear betas 0.00085..0.012, 1000 steps), as float32 log sigmas."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    return sigmas.float(), sigmas.float().log()


def nearest_timestep(log_sigmas):
    return lambda sigma: (sigma.log()[None] - log_sigmas[:, None]).abs().argmin(dim=0)


@pytest.mark.parametrize("stages", range(1, 21))
def test_stage_rule_matches_the_official_float_expression(stages):
    t = torch.arange(1000)
    official = (t / 1000 * stages).long()  # the official code's expression on an integer tensor
    assert torch.equal(se.stage_index(t, stages), official)
    assert [se.stage_index(int(x), stages) for x in t] == official.tolist()


def test_stage_ranges_of_six_stages():
    assert [stage_timestep_range(k, 6) for k in range(6)] == [
        (0, 166), (167, 333), (334, 499), (500, 666), (667, 833), (834, 999)
    ]
    for stages in (1, 3, 6, 7, 10):
        covered = [
            t
            for k in range(stages)
            for t in range(stage_timestep_range(k, stages)[0], stage_timestep_range(k, stages)[1] + 1)
        ]
        assert covered == list(range(1000))
        assert all(se.stage_index(t, stages) == k for k in range(stages) for t in stage_timestep_range(k, stages))


def test_official_dict_round_trip(tmp_path):
    state = official_dict()
    path = tmp_path / "final.bin"
    torch.save(state, path)
    emb = se.load(path)
    assert emb.token == "<sks1>" and emb.stages == 6 and emb.vectors_per_stage == 1 and emb.dim == 768
    for k in range(6):
        assert torch.equal(emb.stage_vectors(k)[0], state[f"<sks1>-T{k}"])
    se.save_official(emb, tmp_path / "again.bin")
    again = torch.load(tmp_path / "again.bin", weights_only=True)
    assert list(again) == list(state) and all(
        torch.equal(again[k], state[k]) and again[k].shape == (768,) for k in state
    )


def test_keys_in_any_order_and_several_vectors_per_stage(tmp_path):
    g = torch.Generator().manual_seed(3)
    state = {f"<style>-T{k}": torch.randn(2, 16, generator=g) for k in (2, 0, 1)}
    emb = se.from_state_dict(state)
    assert emb.stages == 3 and emb.vectors_per_stage == 2 and emb.dim == 16 and emb.token == "<style>"
    assert torch.equal(emb.vectors[1], state["<style>-T1"])
    path = se.save_safetensors(emb, tmp_path / "s.safetensors")
    loaded = se.load(path)
    assert torch.equal(loaded.vectors, emb.vectors) and loaded.token == "<style>"


def test_safetensors_header(tmp_path):
    from safetensors import safe_open

    emb = se.from_state_dict(official_dict(stages=4, dim=32), base="sd1", metadata={"steps": 500})
    path = se.save_safetensors(emb, tmp_path / "e.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        assert sorted(f.keys()) == sorted(official_dict(stages=4, dim=32))
    assert meta["exemplar.kind"] == "dreamstyler_staged_embedding"
    assert (meta["exemplar.token"], meta["exemplar.stages"], meta["exemplar.dim"], meta["exemplar.base"]) == (
        "<sks1>",
        "4",
        "32",
        "sd1",
    )
    assert meta["exemplar.vectors_per_stage"] == "1" and meta["steps"] == "500"
    loaded = se.load(path)
    assert loaded.base == "sd1" and loaded.metadata == {"steps": "500"} and torch.equal(loaded.vectors, emb.vectors)
    assert not list(tmp_path.glob(".*tmp"))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        torch.save({"<x>-T0": torch.zeros(4), "payload": Evil()}, f)
    refused = "refusing to load evil.bin: it pickles Python objects beyond plain tensors"
    with pytest.raises(ValueError, match=refused) as e:
        se.load(path)
    assert "type print" in str(e.value) and "weights_only" not in str(e.value)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="refusing to load raw.pt"):
        se.load(raw)


@pytest.mark.parametrize(
    "state, message",
    [
        ({"emb_params": torch.zeros(1, 768)}, "key 'emb_params' is not of the form"),
        ({"<a>-T0": torch.zeros(8), "<b>-T1": torch.zeros(8)}, "mixes several tokens"),
        ({"<a>-T0": torch.zeros(8), "<a>-T2": torch.zeros(8)}, r"stages \[0, 2\]; expected the contiguous stages 0..1"),
        ({"<a>-T0": torch.zeros(8), "<a>-T1": torch.zeros(9)}, "the stages differ in shape"),
        ({"<a>-T0": torch.zeros(2, 2, 8)}, r"expected \[dim\] or \[vectors, dim\]"),
        ({}, "does not hold a DreamStyler embedding"),
    ],
)
def test_bad_files_are_clear_errors(state, message):
    with pytest.raises(ValueError, match=message):
        se.from_state_dict(state)


def test_safetensors_header_mismatch(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    meta = se.from_state_dict(official_dict(stages=2, dim=8)).header() | {"exemplar.stages": "3"}
    save_file(official_dict(stages=2, dim=8), str(path), metadata=meta)
    with pytest.raises(ValueError, match="header says token/stages/dim"):
        se.load(path)


@pytest.mark.parametrize("stages", [1, 2, 3, 6, 7, 10])
def test_sigma_bounds_give_the_stage_rule_for_every_float32_sigma_near_a_boundary(stages):
    sigmas, log_sigmas = sd1_log_sigmas()
    timestep_of = nearest_timestep(log_sigmas)
    bounds = se.stage_sigma_bounds(timestep_of, sigmas, stages)
    assert bounds[0][0] is None and bounds[-1][1] is None

    def stages_of(sigma: torch.Tensor) -> list[int]:
        s = sigma.item()
        return [k for k, (low, high) in enumerate(bounds) if (low is None or s >= low) and (high is None or s <= high)]

    probes = [sigmas, torch.exp((log_sigmas[1:] + log_sigmas[:-1]) / 2)]  # table values and log midpoints
    for low, _ in bounds[1:]:
        bits = torch.tensor([low], dtype=torch.float32).view(torch.int32)
        probes.append((bits + torch.arange(-4, 5, dtype=torch.int32)).view(torch.float32))
    probes.append(torch.tensor([1e-4, 100.0, 1e4]))
    for sigma in torch.cat(probes):
        expected = se.stage_index(int(timestep_of(sigma[None]).item()), stages)
        assert stages_of(sigma) == [expected], (sigma.item(), expected)


def test_sigma_bounds_of_a_boundary_are_adjacent_floats():
    sigmas, log_sigmas = sd1_log_sigmas()
    bounds = se.stage_sigma_bounds(nearest_timestep(log_sigmas), sigmas, 6)
    for k in range(5):
        high = torch.tensor([bounds[k][1]]).view(torch.int32)
        low = torch.tensor([bounds[k + 1][0]]).view(torch.int32)
        assert (low - high).item() == 1
        first = stage_timestep_range(k + 1, 6)[0]
        midpoint = math.exp((log_sigmas[first - 1].item() + log_sigmas[first].item()) / 2)
        assert abs(bounds[k + 1][0] - midpoint) / midpoint < 1e-6


def test_constructor_validates():
    with pytest.raises(ValueError, match=r"\[stages, vectors_per_stage, dim\]"):
        se.StagedEmbedding("<a>", torch.zeros(3, 8))
    with pytest.raises(ValueError, match="one word without spaces"):
        se.StagedEmbedding("a b", torch.zeros(1, 1, 8))
