"""Index backpropagation quantization (Shi et al., 2024, "Taming Scalable Visual Tokenizer for Autoregressive Image
Generation"; IBQ in TencentARC/SEED-Voken).

The code of a vector is the row of largest dot product ``z·e_k`` (no normalisation, no distance), i.e. the argmax
of ``softmax(z·E^T)``. Inference is therefore a plain lookup (`VectorQuantizer` with ``similarity="dot"``); what
differs is training: the quantized vector is ``(hard - soft.detach() + soft) @ E`` with ``soft = softmax(z·E^T)``
and ``hard`` its one-hot argmax, so its value is the chosen row while the gradient reaches EVERY codebook row (and
the encoder) through the softmax, which keeps all codes in use at 2^18 codes. Losses (the official ones):
``mse(z_q, z) + mse(e_k.detach(), z) + beta·mse(e_k, z.detach())``, plus MAGVIT-v2's entropy terms on the logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .entropy import entropy_terms
from .vq import QuantizerOutput, VectorQuantizer


class IndexBackpropQuantizer(VectorQuantizer):
    """``[..., D]`` -> `QuantizerOutput` (quantized ``[..., D]``, indices ``[...]``) over a ``[K, D]`` codebook.

    `loss` is the official quantization loss; `commitment_loss` its ``beta·mse(e_k, z.detach())`` part (the term
    that moves codes), `codebook_loss` the two terms that move the encoder.
    """

    def __init__(self, codebook_size: int, dim: int, beta: float = 0.25) -> None:
        super().__init__(codebook_size, dim, l2_norm=False, beta=beta, similarity="dot")
        torch.nn.init.normal_(self.embedding.weight)  # nn.Embedding's default init, as upstream

    def logits(self, flat: Tensor) -> Tensor:
        """Dot products ``[N, K]`` of ``flat [N, D]`` with every codebook row."""
        return flat @ self.embedding.weight.to(flat.dtype).t()

    def forward(self, z: Tensor) -> QuantizerOutput:
        shape = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            flat = z.reshape(-1, self.dim)
            soft = F.softmax(self.logits(flat), dim=-1)  # [N, K]
            indices = soft.argmax(dim=-1)
            hard = torch.zeros_like(soft).scatter_(1, indices[:, None], 1.0)
            weight = self.embedding.weight.float()
            z_q = ((hard - soft.detach() + soft) @ weight).reshape(shape)
            rows = F.embedding(indices, weight).reshape(shape)
            move_encoder = F.mse_loss(z_q, z) + F.mse_loss(rows.detach(), z)
            move_codes = self.beta * F.mse_loss(rows, z.detach())
        return QuantizerOutput(z_q, indices.reshape(shape[:-1]), move_encoder + move_codes, move_codes, move_encoder)

    def entropy_terms(self, z: Tensor, temperature: float = 0.01, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
        """(mean per-sample entropy, codebook entropy) of ``softmax(z·E^T / temperature)`` (`quant.entropy`)."""
        return entropy_terms(self.logits(z.reshape(-1, self.dim).float()), temperature, eps)
