"""zoo.nn.vit: a stack narrowed to the rows its caller reads (`keep`) gives exactly those rows of the full output,
with less work."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from zoo.nn.dinov2 import DinoViT
from zoo.nn.vit import Attention, Transformer, run_blocks


def _redraw(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.2 + (0.5 if p.dim() == 1 else 0.0))


@pytest.mark.parametrize("kwargs", [
    {},
    {"packed_qkv": False, "qk_norm": True},
    {"glu": True, "glu_norm": True, "layer_scale": 0.5},
])
@pytest.mark.parametrize("keep", [slice(5, None), slice(1, 9), slice(0, 1)])
def test_keep_gives_the_same_rows_as_the_full_stack(kwargs, keep):
    torch.manual_seed(0)
    stack = Transformer(16, 3, 4, **kwargs).double().eval()
    _redraw(stack, 1)
    x = torch.randn(3, 13, 16, dtype=torch.float64)
    full = stack(x)[:, keep]
    narrowed = stack(x, keep=keep)
    assert narrowed.shape == full.shape
    torch.testing.assert_close(narrowed, full, rtol=0, atol=1e-12)


@pytest.mark.parametrize("per_query", [False, True])
def test_keep_with_an_attention_mask(per_query):
    torch.manual_seed(0)
    stack = Transformer(16, 2, 2).double().eval()
    _redraw(stack, 2)
    B, L = 2, 11
    x = torch.randn(B, L, 16, dtype=torch.float64)
    allowed = torch.rand(B, 1, L if per_query else 1, L, generator=torch.Generator().manual_seed(3)) > 0.3
    allowed[..., 0] = True  # every query sees at least one key
    keep = slice(3, 10)
    torch.testing.assert_close(stack(x, allowed, keep=keep), stack(x, allowed)[:, keep], rtol=0, atol=1e-12)


def test_keep_has_the_same_gradients():
    torch.manual_seed(0)
    stack = Transformer(16, 2, 4).double()
    _redraw(stack, 4)
    x = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    grads = []
    for out in (lambda: stack(x)[:, 4:], lambda: stack(x, keep=slice(4, None))):
        stack.zero_grad()
        x.grad = None
        (out() ** 2).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in stack.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_keep_saves_the_last_blocks_work_on_the_other_rows():
    """Latent-token encoders keep a third of their rows: the last block then costs its keys and values on every
    row and the rest (queries, projection, MLP: 10 of its 12 D² per row) on the kept rows only."""
    D, L, M, depth = 64, 96, 32, 4
    stack = Transformer(D, depth, 4).eval()
    x = torch.randn(1, L, D)

    def flops(**kw) -> int:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            stack(x, **kw)
        return counter.get_total_flops()

    full, narrowed = flops(), flops(keep=slice(L - M, None))
    linear_per_row = 2 * 12 * D * D  # qkv 3D², proj D², MLP 8D², 2 flops per multiply-add
    saved_linear = (L - M) * (linear_per_row - 2 * 2 * D * D)
    saved_attention = 2 * 2 * (L - M) * L * D  # scores and weighted sum of the dropped queries
    # (the flop counter of this torch does not count the CPU flash-attention kernel; a later one may)
    assert full - narrowed in (saved_linear, saved_linear + saved_attention)
    assert saved_linear / full > 0.13  # of a 4-block stack: most of one block


def test_dino_vit_class_token_and_run_keep():
    torch.manual_seed(0)
    vit = DinoViT(32, 2, 4, grid=4, patch_size=8).double().eval()
    _redraw(vit, 5)
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    tokens = vit.embed(vit.patch_embed(images))
    full = vit.run(tokens)
    torch.testing.assert_close(vit(images), full[:, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(vit.run(tokens, keep=slice(1, None)), full[:, 1:], rtol=0, atol=1e-12)


def test_an_empty_stack_still_keeps_the_rows():
    x = torch.randn(1, 5, 8)
    assert torch.equal(run_blocks(torch.nn.ModuleList(), x, keep=slice(2, 4)), x[:, 2:4])


def test_rows_refuse_a_cache_and_causal_attention():
    x = torch.randn(1, 4, 8)
    with pytest.raises(ValueError, match="rows="):
        Attention(8, 2)(x, cache={}, rows=slice(1, None))
    with pytest.raises(ValueError, match="rows="):
        Attention(8, 2, is_causal=True)(x, rows=slice(1, None))
