"""benchmarks/roofline.py: the arithmetic it counts and the ceilings it derives (tiny modules, no released model)."""
from __future__ import annotations

from typing import Iterator

import pytest
import torch
from torch import nn

from conftest import benchmark_script
from zoo.nn.vit import Transformer


@pytest.fixture(scope="module")
def bench() -> Iterator:
    yield from benchmark_script("roofline.py")


def test_vit_flops_match_the_formula(bench):
    """Per block and row: qkv 3D², projection D², MLP 8D² (2 FLOPs each); attention 4·L·D per row."""
    torch.manual_seed(0)
    B, L, D, depth, heads = 2, 10, 32, 3, 4
    model = Transformer(D, depth, heads).eval()
    x = torch.randn(B, L, D)
    products, attention = bench.count_flops(lambda: model(x))
    assert products == depth * 2 * 12 * D * D * B * L
    assert attention == depth * 4 * B * L * L * D


def test_narrowed_queries_and_convolutions_are_counted(bench):
    """Attention with fewer queries than keys (Lq·Lk), and a convolution (2·Cout·Cin·k²·H'·W' per image)."""
    torch.manual_seed(0)
    model = Transformer(16, 2, 2).eval()
    x = torch.randn(1, 12, 16)
    _, attention = bench.count_flops(lambda: model(x, keep=slice(0, 3)))
    assert attention == 4 * 12 * 12 * 16 + 4 * 3 * 12 * 16  # the last block: 3 queries against 12 keys
    conv = nn.Conv2d(3, 8, 3, padding=1)
    products, attention = bench.count_flops(lambda: conv(torch.randn(2, 3, 5, 5)))
    assert (products, attention) == (2 * 8 * 3 * 9 * 25 * 2, 0)


def test_ceilings_bound_the_measured_call(bench):
    torch.manual_seed(0)
    model = Transformer(64, 2, 4).eval()
    x = torch.randn(1, 33, 64)
    row = bench.roofline("tiny", "forward", 1, lambda: model(x), peak=50.0, repeats=2)
    assert row.product_gflop == pytest.approx(2 * 2 * 12 * 64 * 64 * 33 / 1e9)
    assert 0 < row.product_share < 1 and 0 <= row.attention_share < 1
    assert row.rest_share == pytest.approx(1 - row.product_share - row.attention_share)
    assert row.fusion_ceiling >= 1.0  # the products and attention cannot take longer than the whole call
    assert row.roofline_ceiling == pytest.approx(
        row.wall_s / ((row.product_gflop + row.attention_gflop) / row.peak_gflops))
    table = bench.render([row])
    assert table.splitlines()[2].startswith("| tiny | 1 | forward |")
    assert table.splitlines()[1].count("---") == table.splitlines()[0].count("|") - 1


def test_peak_is_a_positive_rate(bench, monkeypatch):
    monkeypatch.setattr(bench, "PEAK_SHAPES", ((64, 64, 64),))
    assert bench.machine_peak(repeats=2) > 0


def test_top_operators_are_ranked_with_their_calls(bench):
    """--top: the operators of most self time, descending, with their call counts (one addmm per linear layer)."""
    torch.manual_seed(0)
    model = Transformer(64, 2, 4).eval()
    x = torch.randn(1, 33, 64)
    linears = sum(isinstance(m, nn.Linear) for m in model.modules())
    row = bench.roofline("tiny", "forward", 1, lambda: model(x), peak=50.0, repeats=1, top=1000)
    shares = [share for _, share, _ in row.top_ops]
    assert shares == sorted(shares, reverse=True) and 0.999 < sum(shares) <= 1.0 + 1e-9  # every operator listed
    assert dict((op, calls) for op, _, calls in row.top_ops)["aten::addmm"] == linears
    assert bench.render_top([row]).startswith("tiny b1 forward: ") and "addmm" in bench.render_top([row])
    assert bench.roofline("tiny", "forward", 1, lambda: model(x), peak=50.0, repeats=1).top_ops == []
