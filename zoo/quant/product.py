"""Product quantization over separate branches (ImageFolder): each branch has its own quantizer and input."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .vq import QuantizerOutput


class ProductQuantizer(nn.Module):
    """Quantize a list of branch inputs with one quantizer each; indices are stacked on a last group axis.

    Every branch quantizer must return indices of the same shape (e.g. the same token layout), so that the
    product code of position t is the tuple of the branches' indices at t.
    """

    def __init__(self, branches: Sequence[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, inputs: Sequence[Tensor]) -> QuantizerOutput:
        if len(inputs) != len(self.branches):
            raise ValueError(f"expected {len(self.branches)} branch inputs, got {len(inputs)}")
        outs = [q(x) for q, x in zip(self.branches, inputs)]
        return QuantizerOutput(
            quantized=torch.cat([o.quantized for o in outs], dim=-1),
            indices=torch.stack([o.indices for o in outs], dim=-1),
            loss=sum(o.loss for o in outs),
            commitment_loss=sum(o.commitment_loss for o in outs),
            codebook_loss=sum(o.codebook_loss for o in outs),
        )

    def lookup(self, indices: Tensor) -> list[Tensor]:
        """int64 ``[..., G]`` -> one tensor per branch."""
        return [q.lookup(indices[..., g]) for g, q in enumerate(self.branches)]
