"""Reference tokens: the value that flows between reference encoders, selectors and injectors."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass(frozen=True)
class ExemplarTokens:
    """A batch of reference tokens and where they came from.

    tokens:    [B, N, D] features.
    positions: [B, N] long; index of each token in its source grid (row-major over `grid`),
               or -1 for tokens without a place in it (CLS, pooled embeddings).
    grid:      (h, w) of the spatial source grid, or None when no token is spatial.
    mask:      [B, N] float in [0, 1]: how much each token belongs to the subject; None = all.
    source:    description of the encoder: {"encoder": ..., "layer": ..., ...}.
    """

    tokens: torch.Tensor
    positions: torch.Tensor
    grid: tuple[int, int] | None = None
    mask: torch.Tensor | None = None
    source: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.tokens.ndim != 3:
            raise ValueError(f"tokens must be [B, N, D], got shape {tuple(self.tokens.shape)}")
        batch, count, _ = self.tokens.shape
        if tuple(self.positions.shape) != (batch, count):
            raise ValueError(f"positions must be [{batch}, {count}], got {tuple(self.positions.shape)}")
        if self.mask is not None and tuple(self.mask.shape) != (batch, count):
            raise ValueError(f"mask must be [{batch}, {count}], got {tuple(self.mask.shape)}")
        if self.grid is not None and int(self.positions.max()) >= self.grid[0] * self.grid[1]:
            raise ValueError(f"a position exceeds the {self.grid[0]}x{self.grid[1]} grid")

    @property
    def batch(self) -> int:
        return self.tokens.shape[0]

    @property
    def count(self) -> int:
        return self.tokens.shape[1]

    @property
    def dim(self) -> int:
        return self.tokens.shape[2]

    def gather(self, index: torch.Tensor) -> "ExemplarTokens":
        """Keep the tokens at `index` ([B, K] long into N), with their positions and mask values."""
        if index.ndim != 2 or index.shape[0] != self.batch:
            raise ValueError(f"index must be [{self.batch}, K], got {tuple(index.shape)}")
        index = index.to(self.tokens.device)
        tokens = torch.gather(self.tokens, 1, index[..., None].expand(-1, -1, self.dim))
        positions = torch.gather(self.positions, 1, index.to(self.positions.device))
        mask = None if self.mask is None else torch.gather(self.mask, 1, index.to(self.mask.device))
        return replace(self, tokens=tokens, positions=positions, mask=mask)

    def to(self, device=None, dtype=None) -> "ExemplarTokens":
        mask = None if self.mask is None else self.mask.to(device=device)
        return replace(
            self, tokens=self.tokens.to(device=device, dtype=dtype), positions=self.positions.to(device), mask=mask
        )


def spatial_positions(batch: int, height: int, width: int, device=None) -> torch.Tensor:
    """Row-major positions of every cell of an h x w grid, for a batch."""
    return torch.arange(height * width, device=device).expand(batch, -1).clone()
