"""TiTok and One-D-Piece against fixtures made by the official implementations.

Fixtures (data only, tests/fixtures/{titok,onedpiece}/README.md say how they were made):
- titok: bytedance/1d-tokenizer at 942a96f (modeling/titok.py `TiTok`), the released configs' key/shape manifests
  and tiny random-weight checkpoints (two-stage legacy, and single-stage non-legacy) with inputs and outputs.
- onedpiece: turingmotors/One-D-Piece at 473665d (modeling/one_d_piece.py `OneDPiece`), likewise, with
  decodes of token prefixes.
"""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo import Codes, ConfigError, InputError
from zoo.convert.common import check_state_dict, meta_state_dict
from zoo.registry import get_entry, get_family
from zoo.config import config_from_dict

FIXTURES = Path(__file__).parent / "fixtures"
ATOL = 1e-4


def manifest_cases():
    for family in ("titok", "onedpiece"):
        path = FIXTURES / family / "manifest.json"
        if path.exists():
            for name in json.loads(path.read_text())["models"]:
                yield family, name


@pytest.mark.parametrize("family, name", list(manifest_cases()))
def test_released_manifest_loads_strictly(family, name):
    """Every key of the released config is consumed and every model key filled, with matching shapes."""
    model_info = json.loads((FIXTURES / family / "manifest.json").read_text())["models"][name]
    official = meta_state_dict(model_info["keys"])
    entry = get_entry(name)
    spec = get_family(entry.family)
    config = config_from_dict(spec.config_cls, dict(entry.config))
    # the official config as the repo writes it gives the same config as the registry entry
    assert spec.config_from_official(model_info["official_config"], official) == config
    with torch.device("meta"):
        model = spec.tokenizer_cls(config)
    check_state_dict(model, spec.convert(official, config), source=f"{name} manifest")
    assert sum(p.numel() for p in model.parameters()) == model_info["num_params"]


def load_tiny(family: str, prefix: str = "tiny", **overrides):
    d = FIXTURES / family
    config_file = next(d.glob(f"{prefix}_config.*"))
    tok = zoo.from_official(family, d / f"{prefix}_official.safetensors", config_file, **overrides)
    io = load_file(str(d / f"{prefix}_io.safetensors"))
    return tok, io


def as_codes(indices: torch.Tensor) -> Codes:
    """Official indices (B, 1, N) -> our Codes [B, N, 1]."""
    return Codes(indices.reshape(indices.shape[0], -1, 1).to(torch.int64))


def test_titok_tiny_two_stage_parity():
    tok, io = load_tiny("titok", heads=4)
    assert tok.config.legacy_reshape and tok.config.two_stage and not tok.config.variable_length
    codes = tok.encode(io["images"])
    assert torch.equal(codes.indices, as_codes(io["indices"]).indices)
    raw = tok.decode(codes, clamp=False)
    assert torch.allclose(raw, io["decoded_tokens"], atol=ATOL), (raw - io["decoded_tokens"]).abs().max()
    assert torch.allclose(tok.decode(codes), io["decoded_tokens"].clamp(0, 1), atol=ATOL)
    # the training forward uses the straight-through vectors, as the official forward does
    out = tok(io["images"])
    assert torch.allclose(out["images"], io["decoded_forward"], atol=ATOL)


def test_titok_tiny_single_stage_parity():
    tok, io = load_tiny("titok", "tiny_vq8k", heads=4)
    assert not tok.config.legacy_reshape and not tok.config.two_stage and not tok.config.l2_norm
    assert tok.config.encoder_width != tok.config.decoder_width
    codes = tok.encode(io["images"])
    assert torch.equal(codes.indices, as_codes(io["indices"]).indices)
    assert torch.allclose(tok.decode(codes, clamp=False), io["decoded_tokens"], atol=ATOL)


def test_onedpiece_tiny_parity_full_and_prefixes():
    tok, io = load_tiny("onedpiece", heads=4)
    assert tok.spec.variable_length and tok.spec.min_tokens == 1 and tok.spec.max_tokens == 16
    codes = tok.encode(io["images"])
    assert torch.equal(codes.indices, as_codes(io["indices"]).indices)
    assert torch.allclose(tok.decode(codes, clamp=False), io["decoded_tokens"], atol=ATOL)
    ks = sorted(int(k.rsplit("k", 1)[1]) for k in io if k.startswith("decoded_tokens_k"))
    assert ks, "fixture has no prefix decodes"
    for k in ks:
        head = tok.encode(io["images"], num_tokens=k)
        assert head.num_tokens == k and head.lengths.tolist() == [k, k]
        assert torch.equal(head.indices, codes.indices[:, :k])
        assert torch.allclose(tok.decode(head, clamp=False), io[f"decoded_tokens_k{k}"], atol=ATOL)
    # mixed lengths in one batch: each image decodes as if alone
    mixed = Codes(codes.indices, lengths=torch.tensor([ks[0], ks[-1]]))
    out = tok.decode(mixed, clamp=False)
    assert torch.allclose(out[0], io[f"decoded_tokens_k{ks[0]}"][0], atol=ATOL)
    assert torch.allclose(out[1], io[f"decoded_tokens_k{ks[-1]}"][1], atol=ATOL)


def test_budgets_are_checked():
    titok, io = load_tiny("titok", heads=4)
    with pytest.raises(InputError, match="always uses 8 tokens"):
        titok.encode(io["images"], num_tokens=4)
    codes = titok.encode(io["images"])
    with pytest.raises(InputError, match="decodes exactly 8 tokens"):
        titok.decode(Codes(codes.indices[:, :4]))
    odp, io = load_tiny("onedpiece", heads=4)
    for bad in (0, 17):
        with pytest.raises(InputError, match=r"num_tokens must be in \[1, 16\]"):
            odp.encode(io["images"], num_tokens=bad)


def test_unknown_official_size_needs_heads():
    d = FIXTURES / "titok"
    with pytest.raises(ConfigError, match="pass heads=N"):
        zoo.from_official("titok", d / "tiny_official.safetensors", next(d.glob("tiny_config.*")))


def test_tail_token_drop_draws_one_length_per_step():
    tok, io = load_tiny("onedpiece", heads=4)
    tok.train()
    torch.manual_seed(3)
    lengths = {int(tok(io["images"])["num_tokens"]) for _ in range(12)}
    assert len(lengths) > 3 and min(lengths) >= 1 and max(lengths) <= 16
    torch.manual_seed(3)
    expected = int(torch.randint(1, 17, (1,)))
    torch.manual_seed(3)
    assert int(tok(io["images"])["num_tokens"]) == expected  # U{1..N} from the global RNG, as released
    tok.eval()
    assert int(tok(io["images"])["num_tokens"]) == 16


def test_onedpiece_on_real_photos_through_official_file_and_cli(tmp_path):
    """zoo.load(name, checkpoint=<official-layout file>) and `zoo reconstruct --tokens` on real photos."""
    from PIL import Image

    from conftest import photo
    from zoo.cli import main
    from zoo.registry import ModelEntry, register_model

    d = FIXTURES / "onedpiece"
    sd = load_file(str(d / "tiny_official.safetensors"))
    torch.save(sd, tmp_path / "pytorch_model.bin")  # the released files are torch pickles
    ref = zoo.from_official("onedpiece", d / "tiny_official.safetensors", next(d.glob("tiny_config.*")), heads=4)
    register_model(ModelEntry(name="test-onedpiece-tiny", family="onedpiece",
                              config={**vars(ref.config)}), overwrite=True)
    tok = zoo.load("test-onedpiece-tiny", checkpoint=tmp_path / "pytorch_model.bin")
    from conftest import photo_batch

    images = photo_batch(64, ("astronaut", "coffee", "chelsea"))
    assert torch.equal(tok.encode(images).indices, ref.encode(images).indices)
    for name in ("astronaut", "coffee"):
        Image.fromarray(photo(name)).save(tmp_path / f"{name}.png")
    out = tmp_path / "rec"
    assert main(["reconstruct", str(tmp_path / "astronaut.png"), str(tmp_path / "coffee.png"), "-m",
                 "test-onedpiece-tiny", "--checkpoint", str(tmp_path / "pytorch_model.bin"), "--tokens", "1,4,16",
                 "-o", str(out), "--device", "cpu", "-q"]) == 0
    assert {p.name for p in out.glob("*.png")} >= {"astronaut_k1.png", "astronaut_k16.png", "coffee_k4.png",
                                                   "grid.png"}
    grid = Image.open(out / "grid.png")
    assert grid.size == (2 * 66 + 2, 4 * 66 + 2)  # one row per budget under the originals: k=1, 4, 16
