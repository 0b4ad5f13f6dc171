"""The CLIP text tower (open_clip's `TextTransformer`, no class embedding) and open_clip's BPE tokenizer.

Token ids ``[N, L]`` -> token + position embeddings -> causal pre-LN blocks (GELU MLP x4, LayerNorm eps 1e-5)
-> final LayerNorm -> the features at the end-of-text token (the largest id of each row) -> ``@ text_projection``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..errors import InputError, OfflineError
from .vit import Transformer


class CLIPTextTransformer(nn.Module):
    """Token ids int64 ``[N, L]`` (L <= context_length) -> text embeddings ``[N, output_dim]`` (not normalised)."""

    def __init__(self, vocab_size: int = 49408, context_length: int = 77, width: int = 512, heads: int = 8,
                 layers: int = 12, output_dim: int = 512, act: str = "gelu") -> None:
        super().__init__()
        self.vocab_size, self.context_length = vocab_size, context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.transformer = Transformer(width, layers, heads, act=act, is_causal=True)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, output_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 2 or tokens.dtype != torch.int64:
            raise InputError(f"text tokens must be int64 [N, L], got {tokens.dtype} {tuple(tokens.shape)}")
        if tokens.shape[1] > self.context_length:
            raise InputError(f"text tokens are {tokens.shape[1]} long; this text tower takes at most "
                             f"{self.context_length}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise InputError(f"text token ids must be in [0, {self.vocab_size}), got "
                             f"[{int(tokens.min())}, {int(tokens.max())}]")
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        x = self.ln_final(self.transformer(x))
        pooled = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # the end-of-text token
        return pooled @ self.text_projection


def clip_tokenize(texts: str | Sequence[str], context_length: int = 77) -> Tensor:
    """open_clip's CLIP BPE tokenizer: strings -> int64 ``[N, context_length]`` (start, BPE, end-of-text, zeros;
    too-long texts are cut and end with the end-of-text token).

    The vocabulary (``bpe_simple_vocab_16e6.txt.gz``) ships inside the ``open_clip_torch`` package; without that
    package (or with its file missing) this raises `OfflineError` saying how to get it.
    """
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts) or not texts:
        raise InputError("texts must be a non-empty list of strings (or pass token ids as an int64 tensor [N, L])")
    try:
        from open_clip.tokenizer import tokenize  # builds the BPE tokenizer from the packaged vocabulary file

        return tokenize(list(texts), context_length=context_length)
    except ImportError as exc:
        raise OfflineError(
            f"the CLIP text tokenizer comes from open_clip, which cannot be imported ({exc}). Install it with "
            "`pip install 'visual-tokenizer-zoo[unitok]'` (or `pip install open_clip_torch`; its BPE vocabulary file "
            "ships inside the package, no download at run "
            "time), or tokenize elsewhere and pass token ids as an int64 tensor [N, L]."
        ) from None
    except OSError as exc:
        raise OfflineError(f"open_clip is installed but its BPE vocabulary file cannot be read ({exc}); reinstall "
                           "open_clip_torch, or pass token ids as an int64 tensor [N, L].") from None
