"""Registry, strict loading, official checkpoints, local folders and the hub cache route."""
import argparse
import io

import pytest
import torch

import zoo
from hubcache import add_to_cache
from zoo import CheckpointError, ConfigError, InputError, OfflineError, UnknownModelError
from zoo.families.vqgan import TINY_CONFIG
from zoo.registry import ModelEntry, register_model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)
    return zoo.build("vqgan", TINY_CONFIG).eval()


def official_sd(model):
    """Our tiny VQGAN's weights in the official key layout (identical names but the codebook: quantize.*)."""
    return {k.replace("quantizer.", "quantize.", 1): v.clone() for k, v in model.state_dict().items()}


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownModelError, match="Did you mean: onedpiece-l-256"):
        zoo.load("onedpiece-l-265")
    with pytest.raises(UnknownModelError, match="titok"):
        zoo.from_official("titokk", {})
    assert "onedpiece-s-256" in zoo.list_models("onedpiece-*")
    assert "maskgit-vqgan" in zoo.list_models(family="vqgan")
    assert "titok-l32" not in zoo.list_models(family="vqgan")


def test_save_and_load_folder_round_trip(tiny, photos64, tmp_path):
    tiny.save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    assert type(again) is type(tiny) and again.config == tiny.config
    assert torch.equal(again.reconstruct(photos64), tiny.reconstruct(photos64))
    assert not list((tmp_path / "m").glob("*.tmp"))


def _forget_digest(folder):
    import json

    meta = json.loads((folder / "config.json").read_text())
    meta.pop("weights_sha256")
    (folder / "config.json").write_text(json.dumps(meta))


def test_folder_with_wrong_weights_is_refused(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    tiny.save_pretrained(tmp_path / "m")
    sd = load_file(str(tmp_path / "m" / "model.safetensors"))
    sd.pop("decoder.conv_out.bias")
    sd["decoder.extra"] = torch.zeros(1)
    save_file(sd, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.safetensors was changed after it was written"):
        zoo.load(tmp_path / "m")  # the recorded sha256 catches it first
    _forget_digest(tmp_path / "m")  # without it, the strict key check still names the keys
    with pytest.raises(CheckpointError, match=r"missing 1 key\(s\): decoder.conv_out.bias.*unexpected 1 key"):
        zoo.load(tmp_path / "m")
    # a config that does not fit the weights
    tiny.save_pretrained(tmp_path / "n")
    cfg = (tmp_path / "n" / "config.json").read_text().replace('"codebook_size": 64', '"codebook_size": 65')
    (tmp_path / "n" / "config.json").write_text(cfg)
    with pytest.raises(CheckpointError, match=r"quantizer.embedding.weight \(64, 32\) vs model \(65, 32\)"):
        zoo.load(tmp_path / "n")
    # a tampered (truncated) weights file
    data = (tmp_path / "m" / "model.safetensors").read_bytes()
    (tmp_path / "m" / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        zoo.load(tmp_path / "m")


def test_from_official_checkpoint_strict(tiny, photos64, tmp_path):
    sd = official_sd(tiny)
    torch.save(sd, tmp_path / "ok.bin")
    loaded = zoo.from_official("vqgan", tmp_path / "ok.bin", {"resolution": 64})
    assert torch.equal(loaded.encode(photos64).indices, tiny.encode(photos64).indices)

    missing = dict(sd)
    missing.pop("encoder.conv_in.weight")
    torch.save(missing, tmp_path / "missing.bin")
    with pytest.raises(CheckpointError, match="encoder.conv_in.weight"):
        zoo.from_official("vqgan", tmp_path / "missing.bin", {"resolution": 64})
    extra = {**sd, "discriminator.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected 1 key\(s\): discriminator.weight"):
        zoo.from_official("vqgan", extra, {"resolution": 64})
    # the official config must agree with the weights
    with pytest.raises(CheckpointError, match="hidden_channels=128 but the checkpoint has 32"):
        zoo.from_official("vqgan", sd, {"hidden_channels": 128, "resolution": 64})
    with pytest.raises(ConfigError, match="unknown key 'codebok_size'.*codebook_size"):
        zoo.from_official("vqgan", sd, {"resolution": 64}, codebok_size=3)


def test_pickles_load_weights_only_with_allow_list(tiny, tmp_path):
    sd = official_sd(tiny)
    torch.save({"model": sd, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "train.pt")
    zoo.from_official("vqgan", tmp_path / "train.pt", {"resolution": 64})

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    torch.save({"model": sd, "x": Evil()}, buf)
    (tmp_path / "evil.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        zoo.from_official("vqgan", tmp_path / "evil.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "train.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        zoo.from_official("vqgan", tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="not found"):
        zoo.from_official("vqgan", tmp_path / "nope.pt")


def test_checkpoint_file_passed_as_name_is_explained(tiny, tmp_path):
    torch.save(official_sd(tiny), tmp_path / "w.bin")
    with pytest.raises(InputError, match="pass it as checkpoint="):
        zoo.load(tmp_path / "w.bin")


def test_hub_route_offline_from_hf_cache(tiny, photos64, tmp_path, monkeypatch):
    """A named model resolves to its hub repo/file and loads offline from a cache laid out like huggingface_hub's."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    register_model(ModelEntry(name="test-vqgan-tiny", family="vqgan", config=TINY_CONFIG,
                              hub_repo="test-org/tiny-vqgan", hub_file="maskgit.bin"), overwrite=True)
    with pytest.raises(OfflineError, match=r"'maskgit.bin' from the hub repo test-org/tiny-vqgan"):
        zoo.load("test-vqgan-tiny")
    buf = io.BytesIO()
    torch.save(official_sd(tiny), buf)
    add_to_cache(tmp_path / "hub", "test-org/tiny-vqgan", {"maskgit.bin": buf.getvalue()})
    loaded = zoo.load("test-vqgan-tiny")
    assert loaded.name == "test-vqgan-tiny"
    assert torch.equal(loaded.encode(photos64).indices, tiny.encode(photos64).indices)
    # the real entries resolve to the official repos and files
    from zoo.hub import fetch_official

    add_to_cache(tmp_path / "hub", "turing-motors/One-D-Piece-S-256", {"pytorch_model.bin": b"x"})
    path = fetch_official(zoo.get_entry("onedpiece-s-256"))
    assert path.name == "pytorch_model.bin" and "models--turing-motors--One-D-Piece-S-256" in str(path)
    assert path.read_bytes() == b"x"
