"""TokenFlow's training hook: the 1 - cos distillation of the semantic decoder towards a frozen teacher tower, next
to the pixel and VQ losses. Runs the tiny recipe (recipes/tokenflow/tiny.yaml) on scikit-image's bundled photos."""
import json
from pathlib import Path

import pytest
import torch

import zoo
from zoo import ConfigError
from zoo.families.tokenflow import TokenFlow, TokenFlowConfig
from zoo.train import train
from zoo.train.adapters import freeze, get_adapter
from zoo.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "tokenflow" / "tiny.yaml"


def test_tiny_recipe_trains_and_distils(tmp_path):
    run = train(TINY, ["train.max_steps=16", "train.log_every=4", "train.save_every=16"], output=tmp_path / "run",
                quiet=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    first, last = log[0], log[-1]
    assert last["loss/semantic"] < 0.8 * first["loss/semantic"]
    assert last["loss/l2"] < first["loss/l2"] and last["loss/quantizer"] > 0
    tok = zoo.load(run.model_dir)
    from conftest import photo_batch

    images = photo_batch(64, names=("astronaut", "coffee"))
    codes = tok.encode(images)
    assert codes.scales == (1, 4, 9, 16) and tok.decode(codes).shape == images.shape
    assert tok.encode_semantic(images).shape == (2, 16, 40)


def test_siglip_keeps_unused_tower_parts_frozen_and_teacher_is_frozen():
    cfg = TokenFlowConfig(image_size=28, teacher="siglip", semantic_width=16, semantic_depth=3, semantic_heads=2,
                          semantic_mlp_dim=32, semantic_patch=14, semantic_table_grid=2, semantic_feature_dim=16,
                          semantic_decoder_depth=1, semantic_decoder_heads=2, semantic_decoder_grid=2,
                          codebook_size=16, scale_sides=(1, 2), encoder_channels=32, decoder_channels=32,
                          encoder_res_blocks=1, decoder_res_blocks=1, z_channels=32)
    model = TokenFlow(cfg)
    rec = load_recipe(TINY, ["model.image_size=28", "data.crop_size=28"], check_data=False)
    adapter = get_adapter("tokenflow")
    adapter.setup(model, rec, torch.device("cpu"))
    frozen = freeze(model, adapter.frozen(rec))
    assert frozen and all(n.startswith(("semantic_encoder.blocks.2.", "semantic_encoder.post_layernorm",
                                        "semantic_encoder.head")) for n in frozen)
    assert not any(p.requires_grad for p in adapter.teacher.parameters())
    assert adapter.teacher(torch.rand(1, 3, 28, 28)).shape == (1, 4, 16)


def test_recipe_refuses_a_teacher_file_and_a_wrong_crop():
    with pytest.raises(ConfigError, match="teacher"):
        train(TINY, ["loss.teacher=some.pt", "train.max_steps=1"], quiet=True)
    with pytest.raises(ConfigError, match="crop_size"):
        train(TINY, ["data.crop_size=32", "train.max_steps=1"], quiet=True)
