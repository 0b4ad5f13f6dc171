"""UniTok against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/unitok/README.md says how they were made): FoundationVision/UniTok at
bb8012e8e8d7be66928bedd80506c56a55ea6305 (models/unitok.py `UniTok`, full-attention projections) and, for the
first release's causal projections, the model code of a56697f104f910b5bf1fb26a91c0198ea99e3599: the released
config's key/shape manifest, a tiny random-weight checkpoint at a size the official tables do not know
(`vitamin_tiny_zoo`: 64x64 images, width 32, 4 sub-codebooks of 64) with its official `args`, and the official
outputs on real photos (indices, encoder/projection features, decodes, image and text embeddings, zero-shot).
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import CheckpointError, Codes, ConfigError, InputError, OfflineError
from zoo.config import config_from_dict
from zoo.convert.common import check_state_dict, drop, meta_state_dict
from zoo.registry import get_entry, get_family

D = Path(__file__).parent / "fixtures" / "unitok"
ATOL = 1e-4
HEADS = 4  # the tiny ViTamin's heads (not readable from weights; vitamin_tiny_zoo is not an official size)
CLASSES = ["astronaut", "coffee", "cat"]
TEMPLATES = ["a photo of a {}.", "a drawing of the {}."]


def tiny(is_causal: bool = False):
    return zoo.from_official("unitok", D / "tiny_official.safetensors", D / "tiny_args.json", heads=HEADS,
                             is_causal=is_causal)


@pytest.fixture(scope="module")
def images():
    return load_file(str(D / "tiny_io.safetensors"))["images"]


@pytest.fixture(scope="module", params=[False, True], ids=["full-attention", "causal"])
def case(request):
    io = load_file(str(D / ("tiny_causal_io.safetensors" if request.param else "tiny_io.safetensors")))
    return tiny(request.param), io


# ---------------------------------------------------------------------------------------------------------------
# Released config
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["unitok", "unitok-causal"])
def test_released_manifest_loads_strictly(name):
    """Every released key is consumed or skipped by name, every model key filled, shapes equal (meta tensors)."""
    info = json.loads((D / "manifest.json").read_text())["models"][name]
    official = meta_state_dict(info["keys"])
    entry, spec = get_entry(name), get_family("unitok")
    config = config_from_dict(spec.config_cls, dict(entry.config))
    assert spec.config_from_official(info["official_config"], official, is_causal=config.is_causal) == config
    kept, dropped = drop(official, spec.skip)
    assert sorted(dropped) == [f"quantizer.codebooks.{k}.vocab_usage" for k in range(8)]
    with torch.device("meta"):
        model = spec.tokenizer_cls(config)
    check_state_dict(model, spec.convert(kept, config), source=f"{name} manifest")
    # upstream counts its frozen zero pos_embed (1024) as a parameter and keeps the zero key biases of the two
    # attention projections as buffers; we drop the first and hold the second inside qkv.bias (2 x 1024)
    assert sum(p.numel() for p in model.parameters()) == info["num_params"] - 1024 + 2 * 1024
    assert model.spec.codebook_sizes == (4096,) * 8 and model.spec.grid == (16, 16)


def test_registered_entries():
    full, causal = get_entry("unitok"), get_entry("unitok-causal")
    assert (full.hub_repo, full.hub_file) == ("FoundationVision/unitok_tokenizer", "unitok_tokenizer.pth")
    assert {m.name: m.value for m in full.metrics}["rFID"] == 0.41
    assert {m.name: m.value for m in full.metrics}["zero-shot top-1"] == 70.8
    assert all(m.protocol for m in full.metrics)
    assert full.config["is_causal"] is False and causal.config["is_causal"] is True


# ---------------------------------------------------------------------------------------------------------------
# Parity with the official outputs, for both attention versions
# ---------------------------------------------------------------------------------------------------------------
def test_tiny_reproduces_official_outputs(case, images):
    tok, io = case
    with torch.no_grad():
        tokens = tok.encoder(images * 2 - 1)
        torch.testing.assert_close(tokens, io["encoder_tokens"], atol=ATOL, rtol=0)
        torch.testing.assert_close(tok.quant_proj(tokens), io["quant_proj"], atol=ATOL, rtol=0)
        codes = tok.encode(images)
        assert codes.indices.shape == (3, 16, 4) and codes.grid == (4, 4)
        assert torch.equal(codes.indices, io["indices"].transpose(1, 2))  # official [B, G, L] -> ours [B, L, G]
        torch.testing.assert_close(tok.codes_to_features(codes), io["post_quant_proj"], atol=ATOL, rtol=0)
        torch.testing.assert_close(tok.decode(codes, clamp=False), (io["decoded"] + 1) / 2, atol=ATOL, rtol=0)
        torch.testing.assert_close(tok.decode(codes), ((io["decoded"].clamp(-1, 1) + 1) / 2), atol=ATOL, rtol=0)
    torch.testing.assert_close(tok.encode_image_features(images, normalize=False), io["image_features"],
                               atol=ATOL, rtol=0)
    torch.testing.assert_close(tok.encode_image_features(images), io["image_features_normalized"], atol=ATOL, rtol=0)
    torch.testing.assert_close(tok.encode_text(io["text_tokens"], normalize=False), io["text_features"],
                               atol=ATOL, rtol=0)


def test_the_two_attention_versions_differ(images):
    """Same weights, causal vs full projections: different codes (nothing in the file tells them apart)."""
    a, b = tiny(False).encode(images), tiny(True).encode(images)
    assert not torch.equal(a.indices, b.indices)


def test_zero_shot_matches_official(case, images):
    tok, io = case
    classifier = tok.zero_shot_classifier(CLASSES, TEMPLATES)
    torch.testing.assert_close(classifier, io["zero_shot_classifier"], atol=ATOL, rtol=0)
    probs = tok.zero_shot(images, CLASSES, TEMPLATES)
    torch.testing.assert_close(probs, io["zero_shot_probs"], atol=ATOL, rtol=0)


def test_training_forward_is_the_straight_through_path(images):
    """forward(): reconstruction equals the index path, the VQ loss is finite, gradients reach the encoder."""
    tok = tiny()
    tokens = tok.tokenize(["a photo of an astronaut", "coffee", "a cat"])
    out = tok(images, tokens)
    torch.testing.assert_close(out["images"].detach(), tok.decode(tok.encode(images), clamp=False), atol=1e-5,
                               rtol=0)
    assert torch.equal(out["quantizer"].indices, tok.encode(images).indices)
    assert out["text_features"].shape == (3, 16) and out["image_features"].shape == (3, 16)
    loss = (out["images"] - images).abs().mean() + out["quantizer"].loss
    loss.backward()
    assert tok.encoder.stem.conv1.weight.grad.abs().sum() > 0
    assert tok.text_encoder.token_embedding.weight.grad is None  # no contrastive term in this loss


# ---------------------------------------------------------------------------------------------------------------
# The understanding side on real photos
# ---------------------------------------------------------------------------------------------------------------
def test_zero_shot_on_real_photos():
    from conftest import photo_batch

    tok = tiny()
    photos = photo_batch(64, names=("astronaut", "coffee", "chelsea", "rocket"))
    probs = tok.zero_shot(photos, ["astronaut", "cup of coffee", "cat", "rocket", "dog"], ["a photo of a {}."])
    assert probs.shape == (4, 5)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(4), atol=1e-5, rtol=0)
    assert torch.equal(probs, tok.zero_shot(photos, ["astronaut", "cup of coffee", "cat", "rocket", "dog"],
                                            ["a photo of a {}."]))  # deterministic
    # the templates as callables (open_clip's form) give the same classifier as format strings
    same = tok.zero_shot(photos, ["astronaut", "cup of coffee", "cat", "rocket", "dog"], [lambda c: f"a photo of a {c}."])
    torch.testing.assert_close(same, probs)
    default = tok.zero_shot_classifier(["cat"])  # the 80 OpenAI ImageNet templates from open_clip
    assert default.shape == (16, 1)


def test_codes_to_embeddings_for_generators(images):
    tok = tiny()
    codes = tok.encode(images)
    own = tok.codes_to_embeddings(codes)
    torch.testing.assert_close(own, tok.codes_to_latents(codes))
    assert own.shape == (3, 16, 16)
    tables = [torch.nn.Embedding(64, 8) for _ in range(4)]
    summed = tok.codes_to_embeddings(codes, tables)
    expected = sum(tables[g](codes.indices[..., g]) for g in range(4))
    torch.testing.assert_close(summed, expected)
    with pytest.raises(InputError, match="needs 4 tables"):
        tok.codes_to_embeddings(codes, tables[:3])
    with pytest.raises(InputError, match=r"table 1 must be \[64, D\]"):
        tok.codes_to_embeddings(codes, [tables[0], torch.nn.Embedding(32, 8), tables[2], tables[3]])


# ---------------------------------------------------------------------------------------------------------------
# Official files and bad input
# ---------------------------------------------------------------------------------------------------------------
def official_pickle(path: Path, state_dict: dict, args: dict) -> Path:
    """The released file's layout: {"args": Args.state_dict() (dtype a torch.dtype), "trainer": {...}, ...}."""
    args = dict(args, dtype=torch.bfloat16)
    disc = {"heads.0.weight": torch.randn(2, 2), "x_scale": torch.ones(3)}
    torch.save({"args": args, "epoch": 1, "iter": 10, "trainer": {"unitok": state_dict, "disc": disc}}, path)
    return path


def test_from_official_training_checkpoint(tmp_path, images):
    """The official pickle loads with weights_only (config from its `args`) and gives the same codes."""
    sd = load_file(str(D / "tiny_official.safetensors"))
    args = json.loads((D / "tiny_args.json").read_text())
    path = official_pickle(tmp_path / "unitok_tokenizer.pth", sd, args)
    tok = zoo.from_official("unitok", path, heads=HEADS)
    assert torch.equal(tok.encode(images).indices, tiny().encode(images).indices)
    # and the converted model round-trips through our own format
    tok.save_pretrained(tmp_path / "ours")
    again = zoo.load(tmp_path / "ours")
    assert torch.equal(again.encode(images).indices, tok.encode(images).indices)


def test_bad_official_files(tmp_path):
    sd = load_file(str(D / "tiny_official.safetensors"))
    args = json.loads((D / "tiny_args.json").read_text())
    with pytest.raises(ConfigError, match="heads=N"):
        zoo.from_official("unitok", D / "tiny_official.safetensors", D / "tiny_args.json")
    with pytest.raises(CheckpointError, match="vocab_size=512"):
        zoo.from_official("unitok", sd, dict(args, vocab_size=512), heads=HEADS)
    missing = {k: v for k, v in sd.items() if not k.startswith("decoder.up_conv4.conv2")}
    with pytest.raises(CheckpointError, match="up_conv4.conv2"):
        zoo.from_official("unitok", missing, args, heads=HEADS)
    moved = dict(sd, **{"encoder.pos_embed": torch.ones_like(sd["encoder.pos_embed"])})
    with pytest.raises(CheckpointError, match="pos_embed is not all zero"):
        zoo.from_official("unitok", moved, args, heads=HEADS)
    with pytest.raises(CheckpointError, match="'unitok'"):
        path = tmp_path / "x.pth"
        torch.save({"trainer": {"disc": {}}}, path)
        zoo.from_official("unitok", path, heads=HEADS)


def test_bad_inputs():
    tok = tiny()
    with pytest.raises(InputError):
        tok.encode(torch.rand(1, 3, 48, 48) * 3)
    with pytest.raises(InputError, match="non-empty list"):
        tok.zero_shot_classifier([])
    with pytest.raises(InputError, match="at most 16"):
        tok.encode_text(torch.zeros(1, 20, dtype=torch.int64))
    with pytest.raises(InputError, match=r"\[0, 49408\)"):
        tok.encode_text(torch.full((1, 4), 50000, dtype=torch.int64))
    with pytest.raises(InputError):
        tok.decode(Codes(torch.full((1, 16, 4), 64, dtype=torch.int64), grid=(4, 4)))  # outside the codebooks


def test_offline_errors(tmp_path, monkeypatch):
    """No checkpoint in the cache offline, and no open_clip for the text tokenizer: one clear message each."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineError, match=r"unitok_tokenizer\.pth.*FoundationVision/unitok_tokenizer"):
        zoo.load("unitok")

    import builtins

    real_import = builtins.__import__

    def no_open_clip(name, *args, **kwargs):
        if name.startswith("open_clip"):
            raise ImportError("No module named 'open_clip'")
        return real_import(name, *args, **kwargs)

    tok = tiny()
    monkeypatch.setattr(builtins, "__import__", no_open_clip)
    with pytest.raises(OfflineError, match="pip install open_clip_torch"):
        tok.encode_text(["a cat"])
    with pytest.raises(OfflineError, match="templates"):
        tok.zero_shot_classifier(["cat"])
    # token ids and explicit templates still work without open_clip
    assert tok.encode_text(torch.tensor([[49406, 2368, 49407]])).shape == (1, 16)
