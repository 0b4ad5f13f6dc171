"""Vision-transformer blocks on `F.scaled_dot_product_attention`.

Parameter names: ``attn.qkv`` (packed, rows [q; k; v] like `nn.MultiheadAttention.in_proj_weight`) or
``attn.q``/``attn.k``/``attn.v`` (separate), ``attn.proj``; ``mlp.fc1``/``mlp.fc2``; ``norm1``/``norm2``;
optional ``ls1``/``ls2`` (LayerScale). Converters map official layouts onto these names.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "silu": F.silu,
    "relu": F.relu,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


class Attention(nn.Module):
    """Multi-head self-attention, ``[B, L, D] -> [B, L, D]``.

    packed: one ``qkv`` Linear(D, 3D) (rows q, k, v) as in `nn.MultiheadAttention`; else separate q, k, v.
    qk_norm: LayerNorm on each head's queries and keys (as some newer ViTs use).
    """

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, proj_bias: bool = True, packed: bool = True,
                 qk_norm: bool = False, is_causal: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.dim, self.heads, self.head_dim, self.packed, self.is_causal = dim, heads, dim // heads, packed, is_causal
        if packed:
            self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        else:
            self.q = nn.Linear(dim, dim, bias=qkv_bias)
            self.k = nn.Linear(dim, dim, bias=qkv_bias)
            self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, cache: dict | None = None,
                rows: slice | None = None) -> Tensor:
        """cache: a dict that keeps this layer's keys/values between calls (incremental decoding): each call's
        tokens follow the cached ones and, when causal, see them all plus the earlier new ones.

        rows: compute the output ``[B, len(rows), D]`` of these positions only: keys and values still come from
        every position, queries only from these (what a caller that reads a few outputs needs, nothing else).
        """
        B, L, D = x.shape
        if rows is not None and (cache is not None or self.is_causal):
            raise ValueError("rows= is for bidirectional attention without a cache")
        if rows is None and self.packed:
            q, k, v = self.qkv(x).split(D, dim=-1)
        elif rows is None:
            q, k, v = self.q(x), self.k(x), self.v(x)
        elif self.packed:
            # the packed weight's rows are [q; k; v]: one product for the queries of the kept rows, one for k and v
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, rows], w[:D], None if b is None else b[:D])
            k, v = F.linear(x, w[D:], None if b is None else b[D:]).split(D, dim=-1)
        else:
            q, k, v = self.q(x[:, rows]), self.k(x), self.v(x)
        Lq = q.shape[1]
        q = q.view(B, Lq, self.heads, self.head_dim).transpose(1, 2)
        k, v = (t.view(B, L, self.heads, self.head_dim).transpose(1, 2) for t in (k, v))
        q, k = self.q_norm(q), self.k_norm(k)
        if rows is not None and attn_mask is not None and attn_mask.dim() >= 2 and attn_mask.shape[-2] == L > 1:
            attn_mask = attn_mask[..., rows, :]  # a per-query mask keeps the kept queries' rows
        causal = self.is_causal and attn_mask is None
        if cache is not None:
            past = cache["k"].shape[2] if "k" in cache else 0
            if past:
                k, v = torch.cat((cache["k"], k), dim=2), torch.cat((cache["v"], v), dim=2)
            cache["k"], cache["v"] = k, v
            if causal and past:
                attn_mask = torch.ones(L, past + L, dtype=torch.bool, device=x.device).tril(past)
                causal = False
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal)
        return self.proj(out.transpose(1, 2).reshape(B, Lq, D))


class Mlp(nn.Module):
    """``fc1 -> activation -> fc2``, ``[..., D] -> [..., D]``."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", bias: bool = True, out_dim: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = activation(act)
        self.fc2 = nn.Linear(hidden, out_dim or dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class GluMlp(nn.Module):
    """Gated MLP (GeGLU with act='gelu', SwiGLU with 'silu'), ``[..., D] -> [..., D]``.

    norm: an optional LayerNorm, placed by `norm_position`:
    - "hidden": on the gated hidden features, ``fc2(norm(act(fc1_g(x)) * fc1_x(x)))``;
    - "input": on the input, before both projections (ViTamin's and UniTok's GeGLU),
      ``fc2(act(fc1_g(n)) * fc1_x(n))`` with ``n = norm(x)``.
    """

    def __init__(self, dim: int, hidden: int, act: str = "gelu", bias: bool = True, norm: bool = False,
                 norm_eps: float = 1e-5, norm_position: str = "hidden") -> None:
        super().__init__()
        if norm_position not in ("hidden", "input"):
            raise ValueError(f"norm_position must be 'hidden' or 'input', got {norm_position!r}")
        self.norm_position = norm_position
        self.fc1_g = nn.Linear(dim, hidden, bias=bias)
        self.fc1_x = nn.Linear(dim, hidden, bias=bias)
        self.act = activation(act)
        width = hidden if norm_position == "hidden" else dim
        self.norm = nn.LayerNorm(width, eps=norm_eps) if norm else nn.Identity()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.norm_position == "input":
            x = self.norm(x)
            return self.fc2(self.act(self.fc1_g(x)) * self.fc1_x(x))
        return self.fc2(self.norm(self.act(self.fc1_g(x)) * self.fc1_x(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))`` (with optional LayerScale)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, act: str = "gelu", glu: bool = False,
                 glu_norm: bool = False, qkv_bias: bool = True, packed_qkv: bool = True, norm_eps: float = 1e-5,
                 layer_scale: float | None = None, qk_norm: bool = False, is_causal: bool = False,
                 glu_norm_position: str = "hidden") -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, heads, qkv_bias=qkv_bias, packed=packed_qkv, qk_norm=qk_norm, is_causal=is_causal)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = (GluMlp(dim, hidden, act, norm=glu_norm, norm_eps=norm_eps, norm_position=glu_norm_position)
                    if glu else Mlp(dim, hidden, act))
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, cache: dict | None = None,
                rows: slice | None = None) -> Tensor:
        """rows: return only these positions ``[B, len(rows), D]``. Everything after the attention's keys and
        values is per position, so they equal the same rows of the full output while the queries, projection and
        MLP run on those rows alone."""
        shortcut = x if rows is None else x[:, rows]
        x = shortcut + self.ls1(self.attn(self.norm1(x), attn_mask, cache, rows))
        return x + self.ls2(self.mlp(self.norm2(x)))


def run_blocks(blocks: nn.ModuleList, x: Tensor, attn_mask: Tensor | None = None,
               keep: slice | None = None) -> Tensor:
    """``[B, L, D]`` through `blocks` in turn -> ``[B, L, D]``, or ``[B, len(keep), D]`` with `keep`.

    keep: the positions the caller reads (a 1-D tokenizer keeps its latent tokens, a decoder its patch positions).
    Only the last block is narrowed to them (earlier blocks' outputs are every later key and value); its other
    rows would be thrown away, so skipping them is exact and saves most of one block.
    """
    last = len(blocks) - 1
    for i, block in enumerate(blocks):
        x = block(x, attn_mask, rows=keep if i == last else None)
    return x if keep is None or last >= 0 else x[:, keep]


class Transformer(nn.Module):
    """A stack of `Block`s (``blocks.{i}``), ``[B, L, D] -> [B, L, D]`` (``keep``: see `run_blocks`)."""

    def __init__(self, dim: int, depth: int, heads: int, **block_kwargs) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim, heads, **block_kwargs) for _ in range(depth))

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, keep: slice | None = None) -> Tensor:
        return run_blocks(self.blocks, x, attn_mask, keep)
