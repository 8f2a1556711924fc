"""DreamBooth's class-specific prior-preservation loss (Ruiz et al. 2022, eq. 2; as practised by diffusers).

The training batch is laid out as [instance; class]: the first `n_instance` rows are the subject
images captioned "a [identifier] [class noun]", the rest are images the frozen base model drew
for "a [class noun]". The loss is

    mse(pred[:n], target[:n]) + prior_weight * mse(pred[n:], target[n:])

with each mse a mean over its own half. prior_weight = 0, or a batch without a class half, is a
plain fine-tune on the instance images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PriorPreservationLoss:
    """The total loss (differentiable) and its two halves (detached, for logging)."""

    total: torch.Tensor
    instance: torch.Tensor
    prior: torch.Tensor | None


def prior_preservation_loss(
    pred: torch.Tensor, target: torch.Tensor, n_instance: int, prior_weight: float = 1.0
) -> PriorPreservationLoss:
    """Loss over a [instance; class] batch; `n_instance` rows are instance rows, the rest class rows."""
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but target has {tuple(target.shape)}")
    batch = pred.shape[0]
    if not 0 < n_instance <= batch:
        raise ValueError(f"n_instance must be in 1..{batch} (the batch size), got {n_instance}")
    if prior_weight < 0:
        raise ValueError(f"prior_weight must be >= 0, got {prior_weight}")
    pred, target = pred.float(), target.float()
    instance = torch.nn.functional.mse_loss(pred[:n_instance], target[:n_instance])
    if n_instance == batch:
        return PriorPreservationLoss(instance, instance.detach(), None)
    prior = torch.nn.functional.mse_loss(pred[n_instance:], target[n_instance:])
    return PriorPreservationLoss(instance + prior_weight * prior, instance.detach(), prior.detach())
