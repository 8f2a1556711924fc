"""DreamStyler's multi-stage textual-inversion embedding: T per-stage token vectors and their files.

A staged embedding holds, for one placeholder token (e.g. ``<sks1>``), T stages of n vectors each
(the official trainer uses n = 1). Stage k is used at the denoising timesteps t with
``floor(t / 1000 * T) == k`` (stage 0 = low noise, stage T-1 = high noise).

Two file forms are read and written:

* the official one: ``torch.save({"<tok>-T0": Tensor[dim], ..., "<tok>-T{T-1}": Tensor[dim]})``
  (``.bin`` / ``.pt``), loaded with ``torch.load(weights_only=True)`` only; several vectors per
  stage are stored as ``Tensor[n, dim]`` (beyond the official trainer, which stores one);
* ours: a ``.safetensors`` file with the same keys and the pack's artefact header
  (models/common/artefact_header.py: ``exemplar.kind`` = ``dreamstyler_staged_embedding``, ``exemplar.version``,
  token, stages, vectors per stage, dim, base architecture); a ``.safetensors`` file without that header
  (e.g. a converted official file) is read from its keys alone.

SDXL has two text encoders, so an SDXL embedding holds per stage a CLIP-L vector set (768) and a bigG one
(1280), each stage in the layout ComfyUI's embedding loader reads for SDXL (``{"clip_l": [n, 768], "clip_g":
[n, 1280]}``): the torch.save form nests that dict under ``<tok>-T<k>``, the safetensors form flattens it to
``<tok>-T<k>.clip_l`` / ``<tok>-T<k>.clip_g`` (header field ``dim_g`` = 1280, base ``sdxl``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..common.artefact_header import PREFIX, has_header, read_header, where_to_get, write_header
from ..common.atomic_file import atomic_write, save_safetensors_atomic
from ..common.tensor_files import readable, require_finite_tensors

KIND = "dreamstyler_staged_embedding"
FORMAT_VERSION = 1
NUM_TRAIN_TIMESTEPS = 1000
_STAGE_KEY = r"^(?P<token>.+?)-T(?P<stage>\d+)(?:\.(?P<encoder>clip_l|clip_g))?$"
SDXL_ENCODERS = ("clip_l", "clip_g")


def is_stage_key(key: str) -> bool:
    """Whether `key` names one stage's vector, '<token>-T<k>' (SD1) or '<token>-T<k>.clip_l|clip_g' (SDXL)."""
    return re.match(_STAGE_KEY, key) is not None


@dataclass(frozen=True)
class StagedEmbedding:
    """``vectors[k]`` ([n, dim], float32) replaces the placeholder ``token`` at stage k; for SDXL, ``vectors`` is
    the CLIP-L part and ``clip_g[k]`` ([n, 1280]) the bigG part of stage k."""

    token: str
    vectors: torch.Tensor
    base: str = ""
    metadata: dict = field(default_factory=dict)
    clip_g: torch.Tensor | None = None

    def __post_init__(self):
        if not isinstance(self.vectors, torch.Tensor) or self.vectors.ndim != 3:
            shape = tuple(self.vectors.shape) if isinstance(self.vectors, torch.Tensor) else type(self.vectors).__name__
            raise ValueError(f"staged embedding vectors must be a tensor [stages, vectors_per_stage, dim]; got {shape}")
        if min(self.vectors.shape) == 0:
            raise ValueError(f"staged embedding vectors must not be empty; got shape {tuple(self.vectors.shape)}")
        if not self.token or any(c.isspace() for c in self.token):
            raise ValueError(f"the placeholder token must be one word without spaces; got {self.token!r}")
        if self.clip_g is not None and (
            not isinstance(self.clip_g, torch.Tensor)
            or self.clip_g.ndim != 3
            or self.clip_g.shape[:2] != self.vectors.shape[:2]
            or self.clip_g.shape[2] == 0
        ):
            shape = tuple(getattr(self.clip_g, "shape", ()))
            raise ValueError(
                f"an SDXL staged embedding's clip_g vectors must be [stages, vectors_per_stage, dim] with the "
                f"clip_l part's {tuple(self.vectors.shape[:2])} stages and vectors; got {shape}"
            )

    @property
    def is_sdxl(self) -> bool:
        return self.clip_g is not None

    def dims(self) -> dict[str, int]:
        """{encoder: vector size}: SDXL {"clip_l": 768, "clip_g": 1280}; one encoder: {"": dim}."""
        if self.is_sdxl:
            return {"clip_l": self.dim, "clip_g": self.clip_g.shape[2]}
        return {"": self.dim}

    def encoder_vectors(self, stage: int) -> dict[str, torch.Tensor]:
        """Stage `stage`'s vectors per text encoder, keyed as `dims`."""
        if self.is_sdxl:
            return {"clip_l": self.stage_vectors(stage), "clip_g": self.clip_g[stage]}
        return {"": self.stage_vectors(stage)}

    @property
    def stages(self) -> int:
        return self.vectors.shape[0]

    @property
    def vectors_per_stage(self) -> int:
        return self.vectors.shape[1]

    @property
    def dim(self) -> int:
        return self.vectors.shape[2]

    def stage_key(self, stage: int) -> str:
        """The official name of stage `stage`'s token, e.g. ``<sks1>-T3``."""
        return f"{self.token}-T{stage}"

    def stage_vectors(self, stage: int) -> torch.Tensor:
        if not 0 <= stage < self.stages:
            raise IndexError(f"stage {stage} out of range for a {self.stages}-stage embedding")
        return self.vectors[stage]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The official layout: one ``[dim]`` vector per stage (``[n, dim]`` when n > 1); SDXL: the flat form."""
        out = {}
        for k in range(self.stages):
            for encoder, v in self.encoder_vectors(k).items():
                v = v.detach().to("cpu", torch.float32).contiguous()
                key = f"{self.stage_key(k)}.{encoder}" if encoder else self.stage_key(k)
                out[key] = v.clone() if self.is_sdxl or self.vectors_per_stage > 1 else v[0].clone()
        return out

    def official_state_dict(self) -> dict:
        """The torch.save form: ``state_dict`` for one encoder; SDXL nests ``{"clip_l", "clip_g"}`` per stage."""
        if not self.is_sdxl:
            return self.state_dict()
        flat = self.state_dict()
        keys = [self.stage_key(k) for k in range(self.stages)]
        return {key: {e: flat[f"{key}.{e}"] for e in SDXL_ENCODERS} for key in keys}

    def header(self) -> dict[str, str]:
        fields = {
            "token": self.token,
            "stages": self.stages,
            "vectors_per_stage": self.vectors_per_stage,
            "dim": self.dim,
            "base": self.base,
        }
        if self.is_sdxl:
            fields["dim_g"] = self.clip_g.shape[2]
        return {
            **write_header(KIND, FORMAT_VERSION, fields),
            **{k: str(v) for k, v in self.metadata.items() if not k.startswith(PREFIX)},
        }


# ----------------------------------------------------------------------------- the stage rule


def stage_index(timestep, stages: int, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS):
    """The official stage rule ``floor(t / num_train_timesteps * stages)`` on integer timesteps t.

    Computed exactly in integers (``t * stages // num_train_timesteps``); works on ints and tensors.
    """
    if stages < 1:
        raise ValueError(f"stages must be >= 1; got {stages}")
    if isinstance(timestep, torch.Tensor):
        return torch.div(timestep.round().long() * stages, num_train_timesteps, rounding_mode="floor").clamp(
            0, stages - 1
        )
    return min(max(int(timestep) * stages // num_train_timesteps, 0), stages - 1)


def _next_float32(x: torch.Tensor, direction: int) -> torch.Tensor:
    bits = x.to(torch.float32).view(torch.int32)
    return (bits + direction).view(torch.float32)


def stage_sigma_bounds(
    timestep_of, sigmas: torch.Tensor, stages: int, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS
) -> list[tuple[float | None, float | None]]:
    """Per stage, the inclusive sigma interval [low, high] (None = unbounded) on which it is used.

    `timestep_of(sigma)` maps a float32 sigma tensor to the model's integer timestep (a discrete
    model's nearest-timestep rule); `sigmas` is its ascending sigma table. Each boundary is the
    smallest float32 sigma whose stage is the upper one, found by bisection on the float32 bit
    patterns, so the intervals tile the positive float32 line with no gap and no overlap, and the
    stage of every float32 sigma equals ``stage_index(timestep_of(sigma))``. A stage no timestep of
    the table reaches gets an empty interval (low > high).
    """
    sigmas = sigmas.detach().to("cpu", torch.float32)

    def stage_of_bits(bits: int) -> int:
        sigma = torch.tensor([bits], dtype=torch.int32).view(torch.float32)
        return stage_index(int(timestep_of(sigma).item()), stages, num_train_timesteps)

    table = [stage_of_bits(b) for b in sigmas.view(torch.int32).tolist()]
    if any(b < a for a, b in zip(table, table[1:])):
        raise ValueError("the model's timestep rule is not monotone in sigma; stages cannot be gated by sigma")
    lows: list[float | None] = [None]
    for k in range(1, stages):
        index = next((i for i, s in enumerate(table) if s >= k), None)
        if index is None:
            lows.append(float("inf"))
            continue
        if index == 0:
            lows.append(0.0)
            continue
        lo, hi = sigmas[index - 1 : index + 1].view(torch.int32).tolist()
        while hi - lo > 1:  # invariant: stage(lo) < k <= stage(hi)
            mid = (lo + hi) // 2
            if stage_of_bits(mid) >= k:
                hi = mid
            else:
                lo = mid
        lows.append(torch.tensor([hi], dtype=torch.int32).view(torch.float32).item())
    bounds = []
    for k in range(stages):
        high = None if k == stages - 1 else lows[k + 1]
        if high is not None and 0 < high < float("inf"):
            high = _next_float32(torch.tensor(high), -1).item()
        elif high == 0.0:
            high = -1.0
        bounds.append((lows[k], high))
    return bounds


# ----------------------------------------------------------------------------- files


def from_state_dict(
    state: dict, base: str = "", metadata: dict | None = None, source: str = "the file"
) -> StagedEmbedding:
    """Parse ``{"<tok>-T0": Tensor[dim] or [n, dim], ...}``; the token and T are inferred from the keys."""
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{source} does not hold a DreamStyler embedding: expected a dict of '<token>-T<k>' tensors")
    stages: dict[int, torch.Tensor] = {}
    stages_g: dict[int, torch.Tensor] = {}
    tokens = set()
    for key, value in _flatten(state).items():
        match = re.match(_STAGE_KEY, str(key))
        if match is None or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{source} is not a DreamStyler staged embedding: key {key!r} is not of the form '<token>-T<k>' "
                f"holding a tensor (a plain textual-inversion embedding loads with ComfyUI's 'embedding:' syntax "
                f"instead). {where_to_get(KIND)}"
            )
        tokens.add(match["token"])
        (stages_g if match["encoder"] == "clip_g" else stages)[int(match["stage"])] = value
    sdxl = any(re.match(_STAGE_KEY, str(k))["encoder"] for k in _flatten(state))
    if sdxl and sorted(stages) != sorted(stages_g):
        raise ValueError(
            f"{source}: an SDXL staged embedding needs clip_l and clip_g vectors for every stage; clip_l has stages "
            f"{sorted(stages)}, clip_g {sorted(stages_g)}"
        )
    if len(tokens) != 1:
        raise ValueError(f"{source} mixes several tokens {sorted(tokens)}; expected one '<token>-T<k>' family")
    count = len(stages)
    if count > NUM_TRAIN_TIMESTEPS:
        raise ValueError(
            f"{source} has {count} stages; a staged embedding has at most {NUM_TRAIN_TIMESTEPS} (one per training "
            "timestep; DreamStyler uses 6 to 10)"
        )
    if sorted(stages) != list(range(count)):
        raise ValueError(f"{source} has stages {sorted(stages)}; expected the contiguous stages 0..{count - 1}")
    vectors = []
    for k in range(count):
        v = stages[k]
        if v.ndim == 1:
            v = v[None]
        if v.ndim != 2:
            raise ValueError(
                f"{source}: stage {k} has shape {tuple(stages[k].shape)}; expected [dim] or [vectors, dim]"
            )
        vectors.append(v.detach().to("cpu", torch.float32))
    shapes = {tuple(v.shape) for v in vectors}
    if len(shapes) != 1:
        raise ValueError(
            f"{source}: the stages differ in shape {sorted(shapes)}; every stage must have the same [vectors, dim]"
        )
    clip_g = _stack_stages(stages_g, source, "clip_g") if sdxl else None
    return StagedEmbedding(
        tokens.pop(), torch.stack(vectors), base=base or ("sdxl" if sdxl else ""), metadata=dict(metadata or {}),
        clip_g=clip_g,
    )


def _flatten(state: dict) -> dict:
    """The nested SDXL torch.save form (``{"<tok>-T0": {"clip_l": t, "clip_g": t}}``) as flat keys."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict) and value and set(value) <= set(SDXL_ENCODERS):
            out.update({f"{key}.{encoder}": v for encoder, v in value.items()})
        else:
            out[key] = value
    return out


def _stack_stages(stages: dict[int, torch.Tensor], source: str, encoder: str) -> torch.Tensor:
    vectors = [v[None] if v.ndim == 1 else v for _, v in sorted(stages.items())]
    if any(v.ndim != 2 for v in vectors) or len({tuple(v.shape) for v in vectors}) != 1:
        raise ValueError(f"{source}: the {encoder} stages must all be [vectors, dim] of one shape")
    return torch.stack([v.detach().to("cpu", torch.float32) for v in vectors])


def load_official(path) -> StagedEmbedding:
    """Read the official ``torch.save`` dict (``.bin`` / ``.pt``) with ``weights_only=True``."""
    path = Path(path)
    with readable(path):
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict):
        require_finite_tensors(_flatten(state), path.name)
    return from_state_dict(state, source=path.name)


def load_safetensors(path) -> StagedEmbedding:
    from safetensors import safe_open

    path = Path(path)
    with readable(path), safe_open(str(path), "pt") as f:
        meta = dict(f.metadata() or {})
        state = {k: f.get_tensor(k) for k in f.keys()}
    require_finite_tensors(state, path.name)
    header = (
        read_header(meta, KIND, FORMAT_VERSION, path.name, label="DreamStyler staged embedding")
        if has_header(meta)
        else None
    )
    embedding = from_state_dict(
        state,
        base=header.fields.get("base", "") if header else "",
        metadata={k: v for k, v in meta.items() if not k.startswith(PREFIX)},
        source=path.name,
    )
    if header is not None:
        expected = (header.value("token"), header.value("stages"), header.value("dim"), header.fields.get("dim_g"))
        found = (embedding.token, str(embedding.stages), str(embedding.dim), embedding.header().get(PREFIX + "dim_g"))
        if expected != found:
            raise ValueError(f"{path.name}: header says token/stages/dim {expected} but the tensors hold {found}")
    return embedding


def load(path) -> StagedEmbedding:
    """Either form, chosen by the file's extension (``.safetensors`` or a torch.save file)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return load_safetensors(path)
    return load_official(path)


def save_safetensors(embedding: StagedEmbedding, path) -> Path:
    return save_safetensors_atomic(path, embedding.state_dict(), embedding.header())


def save_official(embedding: StagedEmbedding, path) -> Path:
    """The official trainer's ``.bin`` layout (a torch.save dict of plain tensors)."""
    return atomic_write(path, lambda tmp: torch.save(embedding.official_state_dict(), str(tmp)))
