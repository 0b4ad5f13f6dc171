"""Lookup-free quantization (Yu et al., 2023, "Language Model Beats Diffusion", MAGVIT-v2), as Open-MAGVIT2 has it.

Each of the D channels of a latent vector is quantized to its sign, -1 or +1 (0 goes to -1); the code of a vector
is the binary number of its D sign bits, channel 0 the LEAST significant bit (``index = sum_d [z_d > 0]·2^d``), so
the implicit codebook has ``2^D`` entries (the ``±1`` corners of the cube), no parameters and no lookup.
Gradients pass by the straight-through estimator. Training adds a commitment term and MAGVIT-v2's entropy loss
on the soft assignment to all ``2^D`` corners: low per-sample entropy (each vector commits to one code) and high
codebook entropy (the batch spreads over the codebook); see `LookupFreeQuantizer.entropy_terms`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .entropy import entropy_terms
from .vq import QuantizerOutput


class LookupFreeQuantizer(nn.Module):
    """``[..., D]`` (D = `bits`) -> straight-through ``±1`` vectors ``[..., D]`` and int64 indices ``[...]``.

    beta: weight of the commitment term ``mse(z, sign(z))`` in `QuantizerOutput.loss`.
    """

    def __init__(self, bits: int, beta: float = 1.0) -> None:
        super().__init__()
        if not 1 <= bits <= 62:
            raise ValueError(f"LFQ needs 1..62 bits per code, got {bits}")
        self.bits, self.dim, self.codebook_size, self.beta = bits, bits, 2 ** bits, beta
        self.register_buffer("_weights", 2 ** torch.arange(bits, dtype=torch.int64), persistent=False)

    def signs(self, z: Tensor) -> Tensor:
        """``[..., D]`` -> the ``±1`` corner of each vector (``z > 0`` -> +1, else -1), same dtype."""
        one = torch.ones((), dtype=z.dtype, device=z.device)
        return torch.where(z > 0, one, -one)

    def quantize(self, z: Tensor) -> Tensor:
        """Indices ``[...]`` of pre-quantization vectors ``[..., D]`` (bit d set when channel d is > 0)."""
        self._check_dim(z)
        return ((z > 0).long() * self._weights).sum(-1)

    def lookup(self, indices: Tensor) -> Tensor:
        """int64 ``[...]`` -> code vectors ``[..., D]`` of ``±1`` (float32)."""
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise IndexError(f"LFQ index out of range [0, {self.codebook_size})")
        bits = (indices[..., None] & self._weights) != 0
        return bits.float() * 2 - 1

    def codebook(self) -> Tensor:
        """Every code vector ``[2^D, D]`` (the implicit codebook; 2^D rows, so only for small D)."""
        return self.lookup(torch.arange(self.codebook_size, device=self._weights.device))

    def forward(self, z: Tensor) -> QuantizerOutput:
        """Training pass: ``z [..., D]`` -> straight-through ``±1`` vectors, indices ``[...]`` and the commitment
        loss ``beta · mse(z, sign(z))`` (as `loss` and `commitment_loss`; there is no codebook loss)."""
        self._check_dim(z)
        q = self.signs(z)
        commitment = F.mse_loss(z, q.detach())
        quantized = z + (q - z).detach()
        zero = z.new_zeros(())
        return QuantizerOutput(quantized, self.quantize(z.detach()), self.beta * commitment, commitment, zero)

    def entropy_terms(self, z: Tensor, temperature: float = 0.01, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
        """MAGVIT-v2's entropy terms on ``z [..., D]``: (mean per-sample entropy, codebook entropy), scalars.

        The affinity of a vector to corner c is ``2 z·c`` (equal to minus the squared distance up to terms
        constant in c); ``p = softmax(2 z·c / temperature)`` over all 2^D corners. Per-sample entropy is
        ``mean_n -sum_c p·log_softmax(logits / temperature + eps)``, codebook entropy
        ``-sum_c p̄·log(p̄ + eps)`` of the batch mean p̄ (the official code's formulas, eps placement included).
        The entropy loss is ``w_sample·per_sample - w_codebook·codebook``. Memory grows as N·2^D.
        """
        self._check_dim(z)
        flat = z.reshape(-1, self.dim).float()
        return entropy_terms(2 * flat @ self.codebook().to(flat).t(), temperature, eps)  # [N, 2^D] affinities

    def _check_dim(self, z: Tensor) -> None:
        if z.shape[-1] != self.dim:
            raise ValueError(f"LFQ with {self.bits} bits takes [..., {self.dim}] latents, got {tuple(z.shape)}")

    def extra_repr(self) -> str:
        return f"bits={self.bits}, codebook_size={self.codebook_size}"
