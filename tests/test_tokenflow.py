"""TokenFlow against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/tokenflow/README.md says how they were made): ByteFlow-AI/TokenFlow at
9812da01c0695f4989060cc4eea053715e9e4441 (tokenflow/tokenizer/vq_model.py `TokenFlow`, vqkd_model.py, clip/model.py;
transformers' SiglipVisionModel): key/shape manifests of both released configs, and two tiny models at sizes no
release has (CLIP-style tower 64 wide at 64 px with its 3x3 position table resampled to 4x4; SigLIP-style tower 48
wide at 56 px; pixel branch ch 32; scales 1..4; 256 entries), whose every tensor is drawn from a seed by `fill`
(the same rule the fixture script used), with the official outputs on two real photos (skimage.data).
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import CheckpointError, InputError
from zoo.config import config_from_dict
from zoo.convert.common import check_state_dict, drop, meta_state_dict
from zoo.families.tokenflow import SemanticTeacher, TokenFlow, TokenFlowConfig, distillation_loss
from zoo.registry import get_entry, get_family

D = Path(__file__).parent / "fixtures" / "tokenflow"
ATOL = 1e-4
TINY_SCALES = (1, 2, 3, 4)
NUM_PARAMS = {"tokenflow-clipb-32k-enhanced": 376_569_643, "tokenflow-siglip-32k": 554_009_963}
FILE_NUMBERS_M = {"tokenflow-clipb-32k-enhanced": 376.70, "tokenflow-siglip-32k": 554.14}  # 1.51 GB / 2.22 GB fp32
TINY_HEADS = dict(semantic_heads=4, semantic_decoder_heads=4)


def fill(shapes: dict, seed: int) -> dict:
    """The fixture script's rule: every tensor redrawn from one seeded generator, keys in sorted order (matrices
    scaled by fan-in, norm weights around 1, biases and vectors small but non-zero)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key in sorted(shapes):
        shape = shapes[key]
        x = torch.randn(shape, generator=g)
        leaf = key.rsplit(".", 1)[-1]
        if len(shape) >= 2 and leaf not in ("positional_embedding", "pos_embed", "cls_token", "probe") \
                and "embedding" not in key:
            x = x / int(torch.tensor(shape[1:]).prod()) ** 0.5
        elif len(shape) == 1 and ("norm" in key or "ln_" in key or "layernorm" in key) and leaf == "weight":
            x = 1 + 0.1 * x
        elif len(shape) == 1:
            x = 0.05 * x
        else:
            x = 0.5 * x
        sd[key] = x
    for key in ("scaling_layer.shift", "scaling_layer.scale"):  # SigLIP's constant buffers, as the model holds them
        if key in sd:
            sd[key] = torch.full(shapes[key], 0.5)
    return sd


def tiny_official(tag: str) -> tuple[dict, dict]:
    info = json.loads((D / "tiny_manifest.json").read_text())[f"tiny_{tag}"]
    return fill(info["keys"], info["seed"]), info


@pytest.fixture(scope="module", params=["clip", "siglip"])
def tiny(request, tmp_path_factory):
    tag = request.param
    sd, info = tiny_official(tag)
    path = tmp_path_factory.mktemp(tag) / "tokenflow_tiny.pt"
    torch.save({"ema": sd}, path)  # the official file layout, read weights-only
    model = zoo.from_official("tokenflow", path, info["official_args"], image_size=info["image_size"],
                              scale_sides=TINY_SCALES, **TINY_HEADS)
    return tag, model.eval(), load_file(str(D / f"tiny_{tag}_io.safetensors"))


def to01(x):
    return (x + 1) / 2


# ---------------------------------------------------------------------------------------------------------------
# Tiny official models: both variants
# ---------------------------------------------------------------------------------------------------------------
def test_tiny_parity_indices_images_and_semantic_features(tiny):
    """Identical indices at every scale; images and semantic features within 1e-4 of the official code."""
    tag, model, io = tiny
    images = io["images"]
    assert model.config.teacher == tag and model.config.scale_sides == TINY_SCALES
    with torch.no_grad():
        tokens = model.semantic_features(images * 2 - 1)
    assert torch.allclose(tokens, io["semantic_tokens"], atol=ATOL), (tokens - io["semantic_tokens"]).abs().max()
    codes = model.encode(images)
    assert codes.indices.shape == (2, 30, 1) and codes.scales == (1, 4, 9, 16) and codes.codebook_sizes == (256,)
    start = 0
    for n in codes.scales:  # every scale on its own
        assert torch.equal(codes.indices[:, start:start + n, 0], io["indices"][:, start:start + n])
        start += n
    assert codes.indices.unique().numel() > 30  # varied codes
    semantic = model.encode_semantic(images)  # what the understanding model consumes: [B, s², 40]
    expected = io["final_quantize"].flatten(2).transpose(1, 2)
    assert semantic.shape == (2, 16, 40) and torch.allclose(semantic, expected, atol=ATOL)
    raw = model.decode(codes, clamp=False)
    expected = to01(io["decoded_from_code"])
    assert torch.allclose(raw, expected, atol=ATOL), (raw - expected).abs().max()
    assert torch.allclose(raw, to01(io["decoded"]), atol=ATOL)
    assert raw.min() < 0 or raw.max() > 1  # unclamped, as the official output
    recon = model.decode_semantic(codes)
    assert torch.allclose(recon, io["semantic_recon_from_code"], atol=ATOL)
    assert torch.allclose(recon, io["semantic_recon"], atol=ATOL)


def test_tiny_prefix_of_whole_scales_decodes_like_official(tiny):
    tag, model, io = tiny
    codes = model.encode(io["images"], num_tokens=14)
    assert codes.scales == (1, 4, 9) and codes.num_tokens == 14
    assert torch.equal(codes.indices[..., 0], io["indices"][:, :14])
    assert torch.allclose(model.decode(codes, clamp=False), to01(io["decoded_prefix3"]), atol=ATOL)
    assert model.spec.token_choices == (1, 5, 14, 30)
    with pytest.raises(InputError, match="one of"):
        model.encode(io["images"], num_tokens=10)


def test_tiny_latent_api_matches_encode_decode_with_gradients(tiny):
    tag, model, io = tiny
    images = io["images"][:1].clone().requires_grad_(True)
    latents = model.encode_latents(images)
    assert latents.shape == (1, 40, 4, 4)
    codes, quantized = model.quantize(latents)
    assert quantized.shape == latents.shape
    assert torch.equal(codes.indices[..., 0], io["indices"][:1])
    out = model.decode_latents(quantized)
    assert torch.allclose(out, model.decode(model.encode(images.detach()), clamp=False), atol=ATOL)
    out.mean().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_tiny_training_forward_and_distillation_loss(tiny):
    tag, model, io = tiny
    model.train()
    try:
        teacher = SemanticTeacher.for_tokenizer(model, seed=0)
        out = model(io["images"], keep=range(4))
        target = teacher(io["images"])
        assert out["semantic"].shape == target.shape == (2, 16, model.config.semantic_feature_dim)
        loss = distillation_loss(out["semantic"], target) + out["quantizer"].loss + (
            out["images"] - io["images"]).square().mean()
        loss.backward()
        assert all(p.grad is None for p in teacher.parameters())
        assert model.semantic_encoder.blocks[0].attn.proj.weight.grad.abs().sum() > 0
        assert model.quantizer.embedding.weight.grad.abs().sum() > 0
        assert distillation_loss(target, target).abs() < 1e-5
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_scale_drop_leaves_out_one_scale_but_the_first():
    q = TokenFlow(TokenFlowConfig(image_size=32, semantic_width=32, semantic_depth=1, semantic_heads=2,
                                  semantic_mlp_dim=128, semantic_table_grid=2, semantic_feature_dim=16,
                                  semantic_decoder_depth=1, semantic_decoder_heads=2, semantic_decoder_grid=2,
                                  codebook_size=16, scale_sides=(1, 2), encoder_channels=32, decoder_channels=32,
                                  encoder_res_blocks=1, decoder_res_blocks=1, z_channels=32)).quantizer
    q.scale_drop = 1.0
    q.scales = (1, 2, 3)
    q.train()
    torch.manual_seed(0)
    drawn = {q.draw_scales() for _ in range(20)}
    assert drawn == {(0, 2), (0, 1)}
    q.eval()
    assert q.draw_scales() == (0, 1, 2)


# ---------------------------------------------------------------------------------------------------------------
# Released configs
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tokenflow-clipb-32k-enhanced", "tokenflow-siglip-32k"])
def test_released_manifest_loads_strictly(name):
    """Every released key is consumed or skipped by name, every model key filled, shapes equal (meta tensors), and
    the parameter count is the official one."""
    info = json.loads((D / "manifest.json").read_text())["models"][name]
    official = meta_state_dict(info["keys"])
    spec = get_family("tokenflow")
    entry = get_entry(name)
    config = config_from_dict(spec.config_cls, dict(entry.config))
    assert spec.config_from_official(info["official_args"], official) == config
    assert spec.config_from_official(None, official) == config  # a bare released state dict: same config
    kept, dropped = drop(official, spec.skip)
    assert sorted(dropped) == info["buffers"]  # usage history and SigLIP's constant scaling: buffers only
    with torch.device("meta"):
        model = spec.tokenizer_cls(config)
    check_state_dict(model, spec.convert(kept, config), source=f"{name} manifest")
    ours = sum(p.numel() for p in model.parameters())
    # ours keeps the release's zero key bias of each semantic-decoder block inside qkv.bias
    zero_k = config.semantic_decoder_depth * config.semantic_width
    assert ours - zero_k == info["num_params"] == NUM_PARAMS[name]
    assert round(info["num_numbers"] / 1e6, 2) == FILE_NUMBERS_M[name]  # x 4 bytes = the Hub file size
    assert model.spec.max_tokens == info["tokens"] and config.scale_sides == tuple(info["scales"])


def test_registered_models():
    clipb, siglip = get_entry("tokenflow-clipb-32k-enhanced"), get_entry("tokenflow-siglip-32k")
    assert (clipb.hub_repo, clipb.hub_file) == ("ByteFlow-AI/TokenFlow", "tokenflow_clipb_32k_enhanced.pt")
    assert (siglip.hub_repo, siglip.hub_file) == ("ByteFlow-AI/TokenFlow", "tokenflow_siglip_32k.pt")
    assert next(m for m in siglip.metrics if m.name == "rFID").value == 0.63


def test_checkpoint_errors_name_the_problem(tmp_path):
    sd, info = tiny_official("clip")
    del sd["quantize.embedding_vqgan.weight"]
    with pytest.raises(CheckpointError):
        zoo.from_official("tokenflow", sd, info["official_args"], image_size=64, scale_sides=TINY_SCALES,
                          **TINY_HEADS)
    sd, _ = tiny_official("clip")
    with pytest.raises(CheckpointError, match="teacher"):
        zoo.from_official("tokenflow", sd, {"teacher": "siglip_384"}, image_size=64, scale_sides=TINY_SCALES,
                          **TINY_HEADS)


def test_zoo_info_and_card(capsys):
    from zoo.cli import main

    assert main(["info", "tokenflow-siglip-32k"]) == 0
    out = capsys.readouterr().out
    assert "tokenflow_siglip_32k.pt" in out and "2227" in out and "rFID: 0.63" in out
    assert main(["card", "tokenflow-clipb-32k-enhanced"]) == 0
    out = capsys.readouterr().out
    assert "dual codebook with shared mapping" in out and "encode_semantic" in out
