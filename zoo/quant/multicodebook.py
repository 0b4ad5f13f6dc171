"""Multi-codebook quantization (UniTok): the channels are split into G chunks, each with its own codebook."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .vq import QuantizerOutput, VectorQuantizer


class MultiCodebookQuantizer(nn.Module):
    """``[..., G*d]`` -> G independent lookups of ``d`` channels; indices ``[..., G]``.

    The vocabulary grows as K^G while each lookup stays small, which is UniTok's remedy for the limited
    representational capacity of a single small codebook.
    """

    def __init__(self, num_codebooks: int, codebook_size: int, dim: int, l2_norm: bool = True,
                 beta: float = 0.25, similarity: str = "euclidean") -> None:
        super().__init__()
        if dim % num_codebooks:
            raise ValueError(f"dim {dim} is not divisible by num_codebooks {num_codebooks}")
        self.num_codebooks, self.codebook_size, self.dim = num_codebooks, codebook_size, dim
        self.chunk = dim // num_codebooks
        self.codebooks = nn.ModuleList(
            VectorQuantizer(codebook_size, self.chunk, l2_norm=l2_norm, beta=beta, similarity=similarity)
            for _ in range(num_codebooks)
        )

    def forward(self, z: Tensor) -> QuantizerOutput:
        outs = [q(part) for q, part in zip(self.codebooks, z.split(self.chunk, dim=-1))]
        return QuantizerOutput(
            quantized=torch.cat([o.quantized for o in outs], dim=-1),
            indices=torch.stack([o.indices for o in outs], dim=-1),
            loss=sum(o.loss for o in outs) / len(outs),
            commitment_loss=sum(o.commitment_loss for o in outs) / len(outs),
            codebook_loss=sum(o.codebook_loss for o in outs) / len(outs),
        )

    def quantize(self, z: Tensor) -> Tensor:
        """Indices only: ``[..., G*d]`` -> int64 ``[..., G]`` (each lookup in fp32)."""
        return torch.stack([q.quantize(part) for q, part in zip(self.codebooks, z.split(self.chunk, dim=-1))], dim=-1)

    def lookup(self, indices: Tensor) -> Tensor:
        """int64 ``[..., G]`` -> ``[..., G*d]``."""
        return torch.cat([q.lookup(indices[..., g]) for g, q in enumerate(self.codebooks)], dim=-1)
