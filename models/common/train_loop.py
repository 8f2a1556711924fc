"""Pieces every trainer of the pack shares (DreamBooth, Diffuse to Choose, the inpainting trainers): one way each.

- Randomness: everything a step draws (which samples, masks, flips, noise, timesteps, dropout) comes from a
  generator seeded by (seed, step, micro-batch, rank), so a run resumed from a checkpoint draws exactly what the
  uninterrupted run drew, and each torchrun rank draws its own data.
- Data parallel: under torch.distributed (torchrun, any backend) the gradients are averaged with all_reduce
  before every optimizer step, so all ranks keep identical weights.
- Checkpoints: the artefact file plus the optimizer state in a side file `<file>.optimizer-state` (safetensors:
  `state_tree.py`; the suffix keeps it out of the LoRA/model pickers), both written atomically; intermediate
  checkpoints go beside the final file as `<stem>_stepNNNNNN<suffix>`. The artefact's header holds `exemplar.step`
  and `exemplar.training` (the settings as JSON, `training_record`); a run resumes from a file with the step.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
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


def file_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a safetensors file (empty when it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def resume_step(metadata: dict[str, str], source: str, written_by: str) -> int:
    """The `exemplar.step` of a checkpoint's header, or a ValueError naming `source` when it has none (a file no
    trainer wrote: only `written_by` can be resumed)."""
    if "exemplar.step" not in metadata:
        raise ValueError(
            f"resume_from: {source} has no 'exemplar.step' in its header; only {written_by} can be resumed"
        )
    return int(metadata["exemplar.step"])


def check_resumable(start_step: int, steps: int) -> None:
    if start_step >= steps:
        raise ValueError(f"resume_from is at step {start_step}; steps must be larger to train further (got {steps})")


def training_record(settings, world: int, extra: dict | None = None, **fields_) -> str:
    """`exemplar.training`: the settings but `steps` (a resumed run may go further), the world size, the trainer's
    own `fields_` and `extra` (who trained: node or CLI), as sorted JSON."""
    info = {k: v for k, v in asdict(settings).items() if k != "steps"}
    info.update(world_size=world, **fields_)
    info.update(extra or {})
    return json.dumps(info, sort_keys=True)


def step_metadata(settings, step: int, world: int, extra: dict | None = None, **fields_) -> dict[str, str]:
    """The header fields of a checkpoint at `step`: `exemplar.step` and `exemplar.training`."""
    return {"exemplar.step": str(step), "exemplar.training": training_record(settings, world, extra, **fields_)}


def adamw(params, learning_rate: float, state: dict | None = None) -> torch.optim.AdamW:
    """The trainers' optimizer, with a resumed run's state loaded (build it once the parameters are on their device:
    load_state_dict moves the state to them)."""
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    if state is not None:
        optimizer.load_state_dict(state)
    return optimizer


def first_x0(state) -> torch.Tensor:
    """The latent preview of a micro-step whose state is (batch, denoised): the first sample's x0 prediction."""
    return state[1][:1].detach()


def held_out_noise(g: torch.Generator, latent_shape, model_sampling, sigma_percent: float):
    """(noise, sigma [1]) of one held-out evaluation draw: the noise from `g`, the one fixed noise level."""
    noise = torch.randn(latent_shape, generator=g)
    return noise, torch.tensor([float(model_sampling.percent_to_sigma(sigma_percent))])


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


@dataclass
class TrainSettings:
    """The settings every pair-dataset trainer has; each trainer's settings add theirs (and may change defaults)."""

    steps: int = 1000
    learning_rate: float = 1e-5
    batch_size: int = 1
    grad_accumulation: int = 1
    resolution: int = 512
    seed: int = 0
    dtype: str = "fp32"
    checkpoint_every: int = 0
    preview_every: int = 0
    gradient_checkpointing: bool = False

    @classmethod
    def from_values(cls, values):
        """The settings named in `values` (node inputs, CLI options: the same names), defaults for the rest."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def common_checks(settings, trainable=None, probabilities=()) -> list[tuple[bool, str]]:
    """The (ok, message) checks of the settings the pair-dataset trainers share: steps, rates, sizes, schedule;
    `trainable` (its allowed values), `mask_mode` and `lora_rank` / `lora_alpha` when the settings have them; the
    fields named in `probabilities` in [0, 1]."""
    from .train_masks import MASK_MODES

    checks = [
        (settings.steps >= 1, f"steps must be >= 1, got {settings.steps}"),
        (settings.learning_rate > 0, f"learning_rate must be > 0, got {settings.learning_rate}"),
        (settings.batch_size >= 1, f"batch_size must be >= 1, got {settings.batch_size}"),
        (settings.grad_accumulation >= 1, f"grad_accumulation must be >= 1, got {settings.grad_accumulation}"),
        (
            settings.resolution >= 64 and settings.resolution % 8 == 0,
            f"resolution must be a multiple of 8, at least 64, got {settings.resolution}",
        ),
        (settings.dtype in TRAIN_DTYPES, f"dtype must be one of {list(TRAIN_DTYPES)}, got {settings.dtype!r}"),
        (settings.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {settings.checkpoint_every}"),
        (settings.preview_every >= 0, f"preview_every must be >= 0, got {settings.preview_every}"),
    ]
    if trainable is not None:
        checks.append(
            (settings.trainable in trainable, f"trainable must be one of {list(trainable)}, got {settings.trainable!r}")
        )
    if hasattr(settings, "mask_mode"):
        checks.append(
            (
                settings.mask_mode in MASK_MODES,
                f"mask_mode must be one of {list(MASK_MODES)}, got {settings.mask_mode!r}",
            )
        )
    if hasattr(settings, "lora_rank"):
        checks.append((settings.lora_rank >= 1, f"lora_rank must be >= 1, got {settings.lora_rank}"))
        checks.append((settings.lora_alpha > 0, f"lora_alpha must be > 0, got {settings.lora_alpha}"))
    for name in probabilities:
        value = getattr(settings, name)
        checks.append((0 <= value <= 1, f"{name} must be in [0, 1], got {value}"))
    return checks


def raise_first(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> float:
    """Mean squared difference over the cells where `region` [B, 1, h, w] is 1 (averaged over the channels)."""
    return float((((prediction - target) ** 2) * region).sum() / (region.sum() * prediction.shape[1]))


def optimise(
    settings,
    start_step: int,
    params,
    optimizer,
    micro_step,
    make_result,
    what: str,
    preview=None,
    checkpoint=None,
    on_step=None,
    on_preview=None,
    progress=None,
    x0_of=None,
):
    """The optimisation loop of the trainers, from `start_step` to `settings.steps`; returns make_result(steps).

    micro_step(g) -> (terms, state): scalar loss tensors, "loss" the one to minimise (its micro-batch mean is
    backpropagated), and what `preview(state)` draws. Per step: grad_accumulation micro-steps with the generators of
    `step_generator`, gradients averaged over the ranks, one optimizer step, the step's mean terms recorded (a
    non-finite one stops training); previews every `preview_every` steps and at the end, on_step(step, total, terms)
    (may raise to cancel), and checkpoint(result) every `checkpoint_every` steps on rank 0. make_result(step, losses,
    previews) builds a result; its optimizer_state is set here. `progress` (any object with status(text) and
    step(step, loss, x0=, image=, snapshot=), e.g. the nodes' TrainingProgress) hears of every step, with
    x0_of(state) as the latent to preview when no image was drawn, and a snapshot that builds the result so far.
    """
    rank, _world = rank_and_world()
    losses, previews = [], []

    def result_at(done):
        made = make_result(done, list(losses), list(previews))
        made.optimizer_state = optimizer.state_dict()
        return made

    if progress is not None:
        progress.status(f"training from step {start_step} to {settings.steps}")
    for step in range(start_step, settings.steps):
        summed: dict = {}
        state = None
        for micro in range(settings.grad_accumulation):
            terms, state = micro_step(step_generator(settings.seed, step, micro, rank))
            (terms["loss"] / settings.grad_accumulation).backward()
            for name, value in terms.items():
                value = value.detach() if torch.is_tensor(value) else value
                summed[name] = summed.get(name, 0.0) + float(value) / settings.grad_accumulation
        average_gradients(params)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        summed["step"] = done
        losses.append(summed)
        if not all(math.isfinite(v) for k, v in summed.items() if k != "step"):
            raise FloatingPointError(
                f"{what} loss became {summed['loss']} at step {done}; lower the learning rate or use fp32"
            )
        image = None
        if on_preview is not None and (
            done == settings.steps or (settings.preview_every and done % settings.preview_every == 0)
        ):
            image = preview(state)
            previews.append(image)
            on_preview(done, image)
        if on_step is not None:
            on_step(done, settings.steps, summed)
        if progress is not None:
            x0 = (lambda: x0_of(state)) if image is None and x0_of is not None else None
            progress.step(done, summed["loss"], x0=x0, image=image, snapshot=lambda: result_at(done))
        if checkpoint is not None and rank == 0 and settings.checkpoint_every:
            if done % settings.checkpoint_every == 0 and done < settings.steps:
                checkpoint(result_at(done))
    return result_at(settings.steps)
