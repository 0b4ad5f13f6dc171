"""MaskGIT-VQGAN against a fixture made by the official implementation.

Fixture (data only): bytedance/1d-tokenizer at 942a96f, `modeling/modules/maskgit_vqgan.py` (Encoder, Decoder,
VectorQuantizer assembled as `PretrainedTokenizer` in modeling/titok.py); see tests/fixtures/maskgit_vqgan/README.md.
"""
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

import zoo
from zoo import Codes
from zoo.config import config_from_dict
from zoo.convert.common import check_state_dict, meta_state_dict
from zoo.registry import get_entry, get_family

FIXTURE = Path(__file__).parent / "fixtures" / "maskgit_vqgan"


def test_released_manifest_loads_strictly():
    manifest = json.loads((FIXTURE / "manifest.json").read_text())["models"]["maskgit-vqgan"]
    official = meta_state_dict(manifest["keys"])
    spec = get_family("vqgan")
    config = config_from_dict(spec.config_cls, dict(get_entry("maskgit-vqgan").config))
    assert spec.config_from_official(manifest["official_config"], official) == config
    with torch.device("meta"):
        model = spec.tokenizer_cls(config)
    check_state_dict(model, spec.convert(official, config), "maskgit-vqgan manifest")
    assert sum(p.numel() for p in model.parameters()) == manifest["num_params"] == 54_515_587


def test_tiny_parity_with_official():
    tok = zoo.from_official("vqgan", FIXTURE / "tiny_official.safetensors", FIXTURE / "tiny_config.json")
    io = load_file(str(FIXTURE / "tiny_io.safetensors"))
    assert tok.config.image_size == 64 and tok.config.channel_mult == (1, 1, 2, 2, 2)
    assert torch.allclose(tok.encode_latents(io["images"]), io["encoder_out"], atol=1e-4)
    codes = tok.encode(io["images"])
    assert torch.equal(codes.indices[..., 0], io["indices"])
    assert torch.allclose(tok.decode(codes, clamp=False), io["decoded_raw"], atol=1e-4)
    assert torch.allclose(tok.decode(codes), io["decoded"], atol=1e-4)
    # decoding the official indices given as a Codes file-like object gives the official images
    official = Codes(io["indices"][..., None], grid=(4, 4))
    assert torch.allclose(tok.decode(official), io["decoded"], atol=1e-4)
