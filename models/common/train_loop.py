"""Pieces every trainer of the pack shares (DreamBooth, Diffuse to Choose, the inpainting trainers): one way each.

- Randomness: everything a step draws (which samples, masks, flips, noise, timesteps, dropout) comes from a
  generator seeded by (seed, step, micro-batch, rank), so a run resumed from a checkpoint draws exactly what the
  uninterrupted run drew, and each torchrun rank draws its own data.
- Data parallel: under torch.distributed (torchrun, any backend) the gradients are averaged with all_reduce
  before every optimizer step, so all ranks keep identical weights.
- Checkpoints: the artefact file plus the optimizer state in a side file `<file>.optimizer-state` (safetensors:
  `state_tree.py`; the suffix keeps it out of the LoRA/model pickers), both written atomically; intermediate
  checkpoints go beside the final file as `<stem>_stepNNNNNN<suffix>`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .atomic_file import atomic_write
from .state_tree import is_safetensors_file, load_state_tree, save_state_tree

TRAIN_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
OPTIMIZER_SUFFIX = ".optimizer-state"


def step_generator(seed: int, step: int, micro: int = 0, rank: int = 0) -> torch.Generator:
    """The generator of one micro-step. The multipliers are distinct primes, so nearby tuples (step 1 micro 0 vs
    step 0 micro 1, rank 0 vs rank 1) never share a seed."""
    mixed = seed * 1_000_003 + step * 7_919 + micro * 104_729 + rank * 15_485_863
    return torch.Generator().manual_seed(mixed % (2**63))


def distributed():
    """torch.distributed when a process group is running (torchrun), else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist
    return None


def rank_and_world() -> tuple[int, int]:
    dist = distributed()
    return (dist.get_rank(), dist.get_world_size()) if dist else (0, 1)


def pick(count: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """`batch` indices into `count` items: without repetition when there are enough, else with."""
    if batch <= count:
        return torch.randperm(count, generator=generator)[:batch]
    return torch.randint(count, (batch,), generator=generator)


def average_gradients(params) -> None:
    """All-reduce the gradients over the ranks (a no-op in a single process); a missing gradient counts as zero."""
    dist = distributed()
    if dist is None:
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world


def checkpoint_path(path: str | Path, step: int) -> Path:
    """Where the intermediate checkpoint of `step` goes: beside the final file, `<stem>_stepNNNNNN<suffix>`."""
    path = Path(path)
    return path.with_name(f"{path.stem}_step{step:06d}{path.suffix}")


def output_path(name: str, root: str | Path, input_name: str, example: str) -> tuple[Path, str]:
    """`name` (relative, .safetensors added) -> (path under the model folder `root`, name as the folder lists it)."""
    clean = name.strip().replace("\\", "/")
    if not clean or clean.startswith("/") or any(part in ("", "..", ".") for part in clean.split("/")):
        raise ValueError(f"{input_name}: expected a relative name like {example!r}, got {name!r}")
    if not clean.endswith(".safetensors"):
        clean += ".safetensors"
    return Path(root) / clean, clean


def optimizer_state_path(path: str | Path) -> Path:
    return Path(str(path) + OPTIMIZER_SUFFIX)


def save_optimizer_state(path: str | Path, state: dict) -> Path:
    """The optimizer state for resuming `path`, beside it, as safetensors (atomic)."""
    return save_state_tree(optimizer_state_path(path), state)


def load_optimizer_state(path: str | Path) -> dict | None:
    """The optimizer state saved beside `path`, or None when there is none. Side files of pack versions <= 0.1.0
    were torch.save pickles: those are still read, with weights_only=True (tensors and plain data only)."""
    side = optimizer_state_path(path)
    if not side.is_file():
        return None
    if is_safetensors_file(side):
        return load_state_tree(side)
    try:
        return torch.load(side, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{side} is neither a safetensors optimizer state nor an older pickled one readable with "
            f"weights_only=True ({type(error).__name__}); delete it to resume with fresh optimizer moments "
            "(then not bit-exact)"
        ) from error


def init_distributed(cpu: bool) -> tuple[int, int]:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on the CPU, NCCL on GPUs); (rank, world size)."""
    import os

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo" if cpu or not torch.cuda.is_available() else "nccl")
    return rank_and_world()


def finish_distributed() -> None:
    dist = distributed()
    if dist is not None:
        dist.barrier()
        dist.destroy_process_group()


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over the sorted keys and raw bytes of the tensors: equal digests = bit-identical weights."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        h.update(state_dict[key].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_rank_report(directory: str | Path, state_dict: dict[str, torch.Tensor], losses: list[dict]) -> Path:
    """`rank<N>.json` (rank, world size, weights digest, losses) in `directory`, atomically (multi-process checks)."""
    import json

    rank, world = rank_and_world()
    report = {"rank": rank, "world_size": world, "digest": state_digest(state_dict), "losses": losses}
    return atomic_write(Path(directory) / f"rank{rank}.json", lambda tmp: tmp.write_text(json.dumps(report)))
