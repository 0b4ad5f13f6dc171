"""Quantizers: indices -> vectors equals the forward output, losses, EMA, usage statistics."""
import math

import pytest
import torch

from zoo.quant import (MultiCodebookQuantizer, MultiScaleResidualQuantizer, ProductQuantizer, VectorQuantizer,
                       codebook_usage)


@pytest.mark.parametrize("l2_norm", [False, True])
def test_vq_lookup_equals_forward(l2_norm):
    q = VectorQuantizer(32, 8, l2_norm=l2_norm)
    torch.nn.init.normal_(q.embedding.weight)
    z = torch.randn(2, 5, 8)
    out = q(z)
    assert out.indices.shape == (2, 5)
    assert torch.allclose(q.lookup(out.indices), out.quantized, atol=1e-6)
    assert torch.equal(q.quantize(z), out.indices)
    # the nearest row really is the nearest (brute force)
    e = q.codebook()
    zz = torch.nn.functional.normalize(z, dim=-1) if l2_norm else z
    brute = torch.cdist(zz.reshape(-1, 8), e).argmin(1).reshape(2, 5)
    assert torch.equal(brute, out.indices)
    if l2_norm:
        assert torch.allclose(out.quantized.norm(dim=-1), torch.ones(2, 5), atol=1e-5)


def test_vq_straight_through_gradient_and_losses():
    q = VectorQuantizer(16, 4, beta=0.25)
    z = torch.randn(3, 4, requires_grad=True)
    out = q(z)
    out.quantized.sum().backward()
    assert torch.allclose(z.grad, torch.ones_like(z))  # identity gradient
    zq = q.lookup(out.indices)
    assert torch.allclose(out.commitment_loss, 0.25 * ((z.detach() - zq) ** 2).mean())
    assert torch.allclose(out.loss, out.commitment_loss + out.codebook_loss)


def test_vq_ema_moves_codes_towards_assigned_inputs():
    torch.manual_seed(0)
    q = VectorQuantizer(4, 2, ema_decay=0.5).train()
    target = torch.tensor([[5.0, 5.0]])
    for _ in range(20):
        out = q(target.repeat(8, 1))
    used = int(out.indices[0])
    assert torch.allclose(q.embedding.weight[used], target[0], atol=1e-2)


def test_multicodebook_splits_channels():
    q = MultiCodebookQuantizer(num_codebooks=4, codebook_size=8, dim=16)
    z = torch.randn(2, 3, 16)
    out = q(z)
    assert out.indices.shape == (2, 3, 4)
    assert torch.allclose(q.lookup(out.indices), out.quantized, atol=1e-6)
    # each group is an independent lookup of its 4 channels
    assert torch.equal(out.indices[..., 2], q.codebooks[2].quantize(z[..., 8:12]))


def test_product_quantizer_stacks_branches():
    q = ProductQuantizer([VectorQuantizer(8, 4, l2_norm=True), VectorQuantizer(8, 4, l2_norm=True)])
    a, b = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    out = q([a, b])
    assert out.indices.shape == (2, 5, 2)
    va, vb = q.lookup(out.indices)
    assert torch.allclose(torch.cat([va, vb], -1), out.quantized, atol=1e-6)


def test_multiscale_lookup_equals_forward_and_prefix_decodes():
    torch.manual_seed(0)
    q = MultiScaleResidualQuantizer(32, 8, scales=(1, 2, 3, 4)).eval()
    torch.nn.init.normal_(q.embedding.weight)
    f = torch.randn(2, 8, 4, 4)
    out = q(f)
    assert out.indices.shape == (2, 1 + 4 + 9 + 16)
    assert torch.allclose(q.lookup(out.indices), out.quantized, atol=1e-5)
    coarse = q.lookup(out.indices[:, :5])
    assert coarse.shape == f.shape
    # more scales reconstruct better
    errs = [(q.lookup(out.indices[:, :n]) - f).pow(2).mean() for n in (1, 5, 14, 30)]
    assert errs[-1] < errs[0]
    with pytest.raises(ValueError, match="inside scale"):
        q.lookup(out.indices[:, :3])


def test_usage_on_constructed_case():
    # group 0 uses codes 0 and 1 equally; group 1 uses only code 3
    idx = torch.tensor([[[0, 3], [1, 3]], [[0, 3], [1, 3]]])
    stats = codebook_usage(idx, [4, 8])
    assert math.isclose(stats[0]["perplexity"], 2.0) and stats[0]["used"] == 2
    assert math.isclose(stats[0]["dead_fraction"], 0.5) and math.isclose(stats[0]["entropy_bits"], 1.0)
    assert math.isclose(stats[1]["perplexity"], 1.0) and stats[1]["used"] == 1
    assert math.isclose(stats[1]["dead_fraction"], 7 / 8)
    # padded positions do not count
    masked = codebook_usage(idx, [4, 8], lengths=torch.tensor([1, 1]))
    assert masked[0]["used"] == 1 and masked[0]["tokens"] == 2
