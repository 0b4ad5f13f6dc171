"""Vector quantization: nearest codebook row, straight-through gradients, VQ-VAE losses, optional EMA updates."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def straight_through(value: Tensor, estimate: Tensor) -> Tensor:
    """`value` in the forward pass (bit for bit), the gradient of `estimate` in the backward pass.

    The usual ``z + (z_q - z).detach()`` is z_q only up to float rounding; ``z_q + (z - z.detach())`` adds an exact
    zero, so the quantized latents equal the code vectors `decode` looks up and the two paths give the same images.
    """
    return value.detach() + (estimate - estimate.detach())


@dataclass
class QuantizerOutput:
    """What a quantizer returns.

    quantized: ``[..., D]`` straight-through quantized vectors (the codebook rows in the forward pass).
    indices: int64 ``[...]`` (VQ) or ``[..., G]`` (several groups).
    loss: commitment + codebook loss (scalar), the term added to a training objective.
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    commitment_loss: Tensor
    codebook_loss: Tensor


class VectorQuantizer(nn.Module):
    """Nearest-neighbour lookup in a ``[K, D]`` codebook (`embedding.weight`).

    With ``l2_norm=True`` (TiTok, One-D-Piece, ALIT, UniTok, ImageFolder) both the inputs and the codebook rows are
    l2-normalised before the lookup (cosine similarity) and the quantized vector is the normalised row.
    similarity: "euclidean" picks the row of least squared distance (||z||² + ||e||² − 2 z·e); "dot" picks the row
    of largest dot product (with ``l2_norm``: the cosine argmax UniTok computes). Equal in exact arithmetic for
    normalised vectors, the two can differ in the last float bit, so each family uses its upstream's form.
    With ``ema_decay`` set, the codebook is updated by exponential moving averages of the assigned inputs in
    training mode instead of by the codebook loss (buffers `ema_cluster_size`, `ema_embed_sum`).
    """

    def __init__(self, codebook_size: int, dim: int, l2_norm: bool = False, beta: float = 0.25,
                 ema_decay: float | None = None, ema_eps: float = 1e-5, similarity: str = "euclidean") -> None:
        super().__init__()
        if similarity not in ("euclidean", "dot"):
            raise ValueError(f"similarity must be 'euclidean' or 'dot', got {similarity!r}")
        self.codebook_size, self.dim, self.l2_norm, self.beta = codebook_size, dim, l2_norm, beta
        self.similarity = similarity
        self.embedding = nn.Embedding(codebook_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / codebook_size, 1.0 / codebook_size)
        self.ema_decay, self.ema_eps = ema_decay, ema_eps
        if ema_decay is not None:
            self.embedding.weight.requires_grad_(False)
            self.register_buffer("ema_cluster_size", torch.zeros(codebook_size))
            self.register_buffer("ema_embed_sum", self.embedding.weight.detach().clone())

    def codebook(self) -> Tensor:
        """The rows the lookup compares against, ``[K, D]`` (normalised when `l2_norm`)."""
        weight = self.embedding.weight
        return F.normalize(weight, dim=-1) if self.l2_norm else weight

    def distances(self, z: Tensor) -> Tensor:
        """Squared euclidean distances ``[N, K]`` between rows of ``z [N, D]`` and the codebook.

        Computed as ||z||² + ||e||² − 2 z·e, as the official implementations do, so that argmin ties break the same.
        The codebook is cast to z's dtype (a bf16 model's lookups run on fp32 inputs).
        """
        e = self.codebook().to(z.dtype)
        return z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * (z @ e.t())

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the closest codebook row for each row of ``flat [N, D]``, int64 ``[N]`` (ties: first index)."""
        if self.similarity == "dot":
            return (flat @ self.codebook().to(flat.dtype).t()).argmax(dim=1)
        return self.distances(flat).argmin(dim=1)

    def lookup(self, indices: Tensor) -> Tensor:
        """int64 ``[...]`` -> code vectors ``[..., D]`` (exact rows, no straight-through)."""
        return F.embedding(indices, self.codebook())

    def quantize(self, z: Tensor) -> Tensor:
        """Indices only: ``[..., D]`` -> int64 ``[...]`` (fp32 lookup whatever the autocast state)."""
        flat = z.reshape(-1, self.dim).float()
        if self.l2_norm:
            flat = F.normalize(flat, dim=-1)
        with torch.autocast(device_type=flat.device.type, enabled=False):
            return self.nearest(flat).reshape(z.shape[:-1])

    def forward(self, z: Tensor) -> QuantizerOutput:
        """``z [..., D]`` -> `QuantizerOutput` with straight-through `quantized` and the VQ losses."""
        shape = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            if self.l2_norm:
                z = F.normalize(z, dim=-1)
            flat = z.reshape(-1, self.dim)
            indices = self.nearest(flat)
            z_q = self.lookup(indices).reshape(shape)
            if self.training and self.ema_decay is not None:
                self._ema_update(flat, indices)
                z_q = self.lookup(indices).reshape(shape)
            commitment = self.beta * F.mse_loss(z, z_q.detach())
            codebook = F.mse_loss(z_q, z.detach()) if self.ema_decay is None else z.new_zeros(())
            quantized = straight_through(z_q, z)
        return QuantizerOutput(quantized, indices.reshape(shape[:-1]), commitment + codebook, commitment, codebook)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, indices: Tensor) -> None:
        one_hot = F.one_hot(indices, self.codebook_size).type_as(flat)
        counts = one_hot.sum(0)
        sums = one_hot.t() @ flat
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        d = self.ema_decay
        self.ema_cluster_size.mul_(d).add_(counts, alpha=1 - d)
        self.ema_embed_sum.mul_(d).add_(sums, alpha=1 - d)
        n = self.ema_cluster_size.sum()
        # Laplace smoothing keeps rarely used codes from dividing by zero.
        size = (self.ema_cluster_size + self.ema_eps) / (n + self.codebook_size * self.ema_eps) * n
        self.embedding.weight.copy_(self.ema_embed_sum / size.unsqueeze(1))

    @torch.no_grad()
    def restart_dead_codes(self, z: Tensor, counts: Tensor, threshold: float = 1.0) -> int:
        """Replace codes used fewer than `threshold` times (``counts [K]``) by random inputs ``z [N, D]``.

        Returns the number of codes restarted.
        """
        dead = (counts < threshold).nonzero().flatten()
        if dead.numel() == 0 or z.numel() == 0:
            return 0
        pick = torch.randint(0, z.reshape(-1, self.dim).shape[0], (dead.numel(),), device=z.device)
        self.embedding.weight[dead] = z.reshape(-1, self.dim)[pick].to(self.embedding.weight.dtype)
        if self.ema_decay is not None:
            self.ema_embed_sum[dead] = self.embedding.weight[dead]
            self.ema_cluster_size[dead] = 1.0
        return int(dead.numel())

    def extra_repr(self) -> str:
        return f"codebook_size={self.codebook_size}, dim={self.dim}, l2_norm={self.l2_norm}, beta={self.beta}"
