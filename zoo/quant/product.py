"""Product quantization over separate branches (ImageFolder): each branch has its own quantizer and input."""
from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn

from .vq import QuantizerOutput


class ProductQuantizer(nn.Module):
    """Quantize a list of branch inputs with one quantizer each; indices are stacked on a last group axis.

    Every branch quantizer must return indices of the same shape (e.g. the same token layout), so that the
    product code of position t is the tuple of the branches' indices at t.
    dim: the axis the branches' quantized outputs are concatenated on (-1 for channel-last vectors, 1 for
        channel-first maps such as multi-scale quantizers').
    loss_reduction: "sum" or "mean" of the branch losses (ImageFolder averages them).
    Keyword arguments of `forward`, `quantize` and `lookup` go to every branch (e.g. the scales kept per sample of
    a quantizer dropout, which all branches share).
    """

    def __init__(self, branches: Sequence[nn.Module], dim: int = -1,
                 loss_reduction: Literal["sum", "mean"] = "sum") -> None:
        super().__init__()
        if loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}")
        self.branches = nn.ModuleList(branches)
        self.dim, self.loss_reduction = dim, loss_reduction

    def _check(self, inputs: Sequence[Tensor]) -> None:
        if len(inputs) != len(self.branches):
            raise ValueError(f"expected {len(self.branches)} branch inputs, got {len(inputs)}")

    def forward(self, inputs: Sequence[Tensor], **kwargs: Any) -> QuantizerOutput:
        self._check(inputs)
        outs = [q(x, **kwargs) for q, x in zip(self.branches, inputs)]
        scale = 1.0 / len(outs) if self.loss_reduction == "mean" else 1.0
        return QuantizerOutput(
            quantized=torch.cat([o.quantized for o in outs], dim=self.dim),
            indices=torch.stack([o.indices for o in outs], dim=-1),
            loss=sum(o.loss for o in outs) * scale,
            commitment_loss=sum(o.commitment_loss for o in outs) * scale,
            codebook_loss=sum(o.codebook_loss for o in outs) * scale,
        )

    def quantize(self, inputs: Sequence[Tensor], **kwargs: Any) -> Tensor:
        """Indices only, stacked on a last group axis ``[..., G]``."""
        self._check(inputs)
        return torch.stack([q.quantize(x, **kwargs) for q, x in zip(self.branches, inputs)], dim=-1)

    def lookup(self, indices: Tensor, **kwargs: Any) -> list[Tensor]:
        """int64 ``[..., G]`` -> one tensor per branch."""
        return [q.lookup(indices[..., g], **kwargs) for g, q in enumerate(self.branches)]
