"""Every registered family goes through the same evaluation harness: one `zoo eval` run over a tiny random-weight
model of each family, on real photos, PSNR and SSIM only (no weights to download), gives one report whose rows
share the protocol and the columns.

The family list comes from the registry, so a family merged later joins this test by itself; its module should
expose ``TINY_CONFIG`` (a small config dict). Families whose module has none get one here (`FALLBACK_TINY`).
"""
from __future__ import annotations

import json
import sys

import pytest
import torch

import zoo
from zoo.registry import get_family

# families whose module has no TINY_CONFIG (sizes from their tiny recipes / test fixtures)
_VIT = dict(image_size=64, patch_size=8, num_latent_tokens=16, encoder_width=32, encoder_depth=1, encoder_heads=2,
            decoder_width=32, decoder_depth=1, decoder_heads=2, codebook_size=64, token_size=8, l2_norm=True,
            legacy_reshape=False, two_stage=False)
FALLBACK_TINY: dict[str, dict] = {
    "tokenflow": dict(image_size=64, teacher="clip", semantic_width=32, semantic_depth=2, semantic_heads=2,
                      semantic_mlp_dim=128, semantic_patch=16, semantic_table_grid=3, semantic_feature_dim=32,
                      semantic_decoder_depth=1, semantic_decoder_heads=2, semantic_decoder_grid=3, codebook_size=256,
                      scale_sides=[1, 2, 3, 4], encoder_channels=32, encoder_res_blocks=1, decoder_channels=32,
                      decoder_res_blocks=1, z_channels=32),
    "titok": _VIT,
    "onedpiece": {**_VIT, "variable_length": True},
    "unitok": dict(image_size=64, stem_width=8, stage_widths=[8, 16], stage_depths=[1, 1], width=32, depth=1, heads=4,
                   mlp_ratio=2.0, decoder_widths=[16, 8], decoder_up_depths=[1, 1], num_codebooks=4, codebook_size=64,
                   code_dim=16, projection_heads=2, embed_dim=16, text_context_length=16, text_width=16,
                   text_heads=2, text_layers=1),
    "imagefolder": dict(image_size=64, patch_size=8, encoder_width=32, encoder_depth=1, encoder_heads=2,
                        decoder_width=32, decoder_depth=1, decoder_heads=2, scale_sides=(1, 2, 4), codebook_size=64,
                        code_dim=8),
    "alit": dict(image_size=32, patch_size=8, width=64, depth=1, heads=2, tokens_per_rollout=4, max_rollouts=2,
                 max_latent_tokens=16, codebook_size=64, token_size=8, base_hidden_channels=32,
                 base_channel_mult=(1, 1, 1, 1), base_num_res_blocks=1, base_z_channels=32, base_codebook_size=64),
}


def tiny_config(family: str) -> dict:
    module = sys.modules[get_family(family).tokenizer_cls.__module__]
    own = getattr(module, "TINY_CONFIG", None)
    if own is not None and family not in FALLBACK_TINY:
        return dict(own)
    if family not in FALLBACK_TINY:
        pytest.fail(f"family {family!r} has no TINY_CONFIG in {module.__name__}: add one (a small config dict) so "
                    "that the shared-harness test can build it")
    return FALLBACK_TINY[family]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three real photos (scikit-image's bundled ones) as PNG files."""
    import skimage.data
    from PIL import Image

    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(skimage.data, name)()).save(d / f"{name}.png")
    return d


def test_one_eval_report_over_every_family(tmp_path, photos):
    from zoo.cli import main

    families = zoo.list_families()
    assert {"vqgan", "titok", "imagefolder", "unitok", "alit", "llamagen", "var-vqvae"} <= set(families)
    folders = []
    for i, family in enumerate(families):
        torch.manual_seed(i)
        model = zoo.build(family, tiny_config(family)).eval()
        folders.append(str(zoo.save_pretrained(model, tmp_path / "models" / family)))
    out = tmp_path / "report"
    assert main(["eval", "-m", ",".join(folders), "--data", str(photos), "--metrics", "psnr,ssim", "-o", str(out),
                 "-q", "--batch-size", "3"]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["results"]
    assert [r["family"] for r in rows] == families, [r.get("family") for r in rows]
    shared = {k: v for k, v in rows[0]["protocol"].items() if k not in ("size", "crop")}
    for row, family in zip(rows, families):
        spec = zoo.build(family, tiny_config(family)).spec
        assert row["images"] == 3 and 0 < row["psnr"] < 60 and -1 <= row["ssim"] <= 1, row
        assert row["protocol"]["size"] == spec.image_size
        assert row["protocol"]["crop"].startswith(spec.eval_crop + ":")  # each family's official crop, recorded
        assert {k: v for k, v in row["protocol"].items() if k not in ("size", "crop")} == shared
        assert row["crop"] == spec.eval_crop and row["image_size"] == spec.image_size
        if spec.continuous:  # latents: float16 storage, flagged as not comparable with codes
            assert row["continuous"] and row["bits_per_image"] == 16 * spec.code_dim * spec.max_tokens, row
        else:
            assert row["bits_per_image"] == row["tokens_per_image"] * spec.bits_per_token
    table = (out / "report.md").read_text()
    assert all(f"| {family} |" in table for family in families)
    assert "var: VAR's val transform" in table and "adm: ADM center_crop_arr" in table
