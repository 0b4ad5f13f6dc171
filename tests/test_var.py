"""ImageFolder's VAR generator (next-scale prediction) against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/var/README.md): lxa9867/ImageFolder at 76ddfb9a65912f01a74f864a17ee2f344cca33c5
(models/var.py `VAR`, FoundationVision/VAR's code vendored): the released d17 generator's key/shape manifest, a
tiny random-weight generator on the tiny ImageFolder tokenizer of tests/fixtures/imagefolder, its teacher-forced
logits, and codes and images sampled with classifier-free guidance, top-k and top-p from a seeded generator.
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import CheckpointError, Codes, ConfigError
from zoo.convert import var as convert
from zoo.convert.common import check_state_dict, drop, meta_state_dict
from zoo.nn.var import NextScaleTransformer, sample_top_k_top_p

F = Path(__file__).parent / "fixtures"
TINY_SCALES = {"pn": "1_1_2_3_3_4_5_6"}


@pytest.fixture(scope="module")
def official():
    return load_file(str(F / "var" / "tiny_var.safetensors")), load_file(str(F / "var" / "tiny_var_io.safetensors"))


@pytest.fixture(scope="module")
def model(official):
    sd, _ = official
    kept, dropped = drop(sd, convert.SKIP)
    assert sorted(dropped) == ["attn_bias_for_masking", "lvl_1L"]
    m = NextScaleTransformer(**convert.config_from_official(TINY_SCALES, sd)).eval()
    check_state_dict(m, convert.convert_state_dict(kept), source="tiny VAR")
    m.load_state_dict(convert.convert_state_dict(kept), strict=True)
    return m


@pytest.fixture(scope="module")
def tokenizer():
    d = F / "imagefolder"
    return zoo.from_official("imagefolder", d / "tiny_official.safetensors", d / "tiny_config.yaml",
                             encoder_heads=4, decoder_heads=2)


def test_released_manifest_loads_strictly():
    info = json.loads((F / "var" / "manifest.json").read_text())["models"]["imagefolder-var-d17-4096"]
    official = meta_state_dict(info["keys"])
    kwargs = convert.config_from_official(info["official_config"], official)
    assert kwargs == dict(scales=(1, 1, 2, 3, 3, 4, 5, 6, 8, 11), code_dim=64, vocab=8192, num_classes=1000,
                          width=1088, depth=17, heads=17, mlp_ratio=4.0, l2_norm=True)
    kept, _ = drop(official, convert.SKIP)
    with torch.device("meta"):
        m = NextScaleTransformer(**kwargs)
    check_state_dict(m, convert.convert_state_dict(kept), source="VAR-d17 manifest")
    # upstream's count has the zero key biases as buffers; ours holds them inside qkv.bias (17 x 1088)
    assert sum(p.numel() for p in m.parameters()) == info["num_params"] + 17 * 1088


def test_teacher_forced_logits_match_official(model, official, tokenizer):
    _, io = official
    codes = Codes(torch.stack([io["indices_branch0"], io["indices_branch1"]], -1), scales=tokenizer.spec.scales)
    inputs = tokenizer.teacher_forcing_input(codes)
    torch.testing.assert_close(inputs, io["var_input"], atol=1e-5, rtol=0)
    with torch.no_grad():
        logits = model(io["labels"], inputs)
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)


def test_sampling_with_the_rng_matched_gives_the_official_codes_and_images(model, official, tokenizer):
    _, io = official
    state = [None]

    def next_input(si, indices):
        state[0], x = tokenizer.next_scale_input(state[0], si, indices)
        return x

    g = torch.Generator().manual_seed(int(io["sample_seed"]))
    b0, b1 = model.sample(io["sample_labels"], next_input, groups=2, guidance=float(io["sample_cfg"]),
                          top_k=int(io["sample_top_k"]), top_p=float(io["sample_top_p"]), generator=g)
    assert torch.equal(b0, io["sample_indices_branch0"]) and torch.equal(b1, io["sample_indices_branch1"])
    images = tokenizer.decode(Codes(torch.stack([b0, b1], -1), scales=tokenizer.spec.scales))
    torch.testing.assert_close(images, io["sample_images"], atol=1e-4, rtol=0)
    # the tokenizer's running state is the sum of all scales: decoding it directly gives the same images
    direct = tokenizer.decode_latents(torch.cat(state[0], dim=1)).clamp(0, 1)
    torch.testing.assert_close(direct, images, atol=1e-5, rtol=0)


def test_top_k_top_p_filtering():
    logits = torch.tensor([[[4.0, 3.0, 2.0, 1.0, 0.0]]]).repeat(1, 500, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample_top_k_top_p(logits, top_k=2, generator=g).unique().tolist()) == {0, 1}
    # top_p 0.5: the smallest set with probability > 0.5 is {0} (p0 = 0.64)
    assert set(sample_top_k_top_p(logits, top_p=0.5, generator=g).unique().tolist()) == {0}
    kept = logits.clone()
    sample_top_k_top_p(kept, top_k=1)
    assert torch.equal(kept, logits)  # the caller's logits are left alone


def test_bad_official_files(official):
    sd, _ = official
    with pytest.raises(ConfigError, match="scale schedule"):
        convert.config_from_official(None, sd)
    with pytest.raises(CheckpointError, match="pos_1LC has 101 positions"):
        convert.config_from_official({"pn": "1_2_3"}, sd)
    with pytest.raises(CheckpointError, match="var_wo_ddp"):
        convert.extract({"trainer": {"vae_local": {}}})
    state, args = convert.extract({"trainer": {"var_wo_ddp": sd, "vae_local": {}}, "args": dict(TINY_SCALES)})
    assert args == TINY_SCALES and state.keys() == sd.keys()


def test_precomputed_modulation_gives_the_same_outputs(model):
    """Sampling computes each block's AdaLN modulation once (the class condition is fixed): the blocks and the head
    must give bit-identical outputs with the precomputed modulation and with the condition itself."""
    g = torch.Generator().manual_seed(3)
    cond = model.class_embed(torch.tensor([1, 5]))
    x = torch.randn(2, 4, model.width, generator=g)
    with torch.no_grad():
        for block in model.blocks:
            assert torch.equal(block(x, cond), block(x, block.modulation(cond)))
        assert torch.equal(model.logits(x, cond), model.logits(x, model.head_norm.modulation(cond)))
