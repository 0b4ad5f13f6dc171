"""The hub end to end against a real HTTP server on loopback (tests/fakehub.py) speaking huggingface_hub's protocol.

push -> pull by name and revision -> pull again offline from the HF cache; wrong revisions and missing files;
tampered weights and config/weights mismatches; official checkpoints converted once into the zoo cache; model
cards that render and validate.
"""
import hashlib
import io
import json
from pathlib import Path

import pytest
import torch

import zoo
from fakehub import FakeHub, Repo
from hubcache import add_to_cache
from zoo import CheckpointError, InputError, OfflineError
from zoo.families.vqgan import TINY_CONFIG
from zoo.registry import Metric, ModelEntry, register_model


@pytest.fixture(scope="module")
def hub():
    with FakeHub(lifetime=240) as server:
        yield server


@pytest.fixture
def online(hub, tmp_path, monkeypatch):
    """huggingface_hub pointed at the loopback hub, with a fresh HF cache and zoo cache for this test."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    return hub


def go_offline(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def tiny(seed: int):
    torch.manual_seed(seed)
    return zoo.build("vqgan", TINY_CONFIG).eval()


@pytest.fixture(scope="module")
def pushed(hub):
    """Two versions of a tiny VQGAN in one repo: v1 (tagged) then a retrained main."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        first, second = tiny(1), tiny(2)
        mp = pytest.MonkeyPatch()
        mp.setenv("HF_ENDPOINT", hub.endpoint)
        v1 = first.push_to_hub("test-user/tiny-vqgan", tag="v1")
        v2 = second.push_to_hub("test-user/tiny-vqgan", commit_message="retrained")
        mp.undo()
    finally:
        constants.HF_HUB_OFFLINE = saved
    return {"v1": v1, "v2": v2, "first": first, "second": second}


def test_push_writes_config_weights_and_card_in_one_commit(pushed, hub):
    repo = hub.repos["test-user/tiny-vqgan"]
    tree = repo.commits[pushed["v1"]["commit"]]
    assert {"config.json", "model.safetensors", "README.md"} <= set(tree)
    meta = json.loads(tree["config.json"])
    assert meta["family"] == "vqgan" and meta["config"]["codebook_size"] == 64 and meta["zoo_version"] == zoo.__version__
    assert meta["weights_sha256"] == hashlib.sha256(tree["model.safetensors"]).hexdigest()
    assert repo.refs["v1"] == pushed["v1"]["commit"] and repo.refs["main"] == pushed["v2"]["commit"]
    assert pushed["v1"]["commit"] != pushed["v2"]["commit"]


def test_pull_by_name_and_revision_then_offline(pushed, online, photos64, monkeypatch):
    first, second = pushed["first"], pushed["second"]
    want1, want2 = first.encode(photos64).indices, second.encode(photos64).indices
    assert not torch.equal(want1, want2)  # the two versions really differ on these photos

    latest = zoo.load("hf://test-user/tiny-vqgan")
    assert torch.equal(latest.encode(photos64).indices, want2)
    assert torch.equal(latest.reconstruct(photos64), second.reconstruct(photos64))
    by_tag = zoo.load("hf://test-user/tiny-vqgan@v1")
    assert torch.equal(by_tag.encode(photos64).indices, want1)
    sha = pushed["v1"]["commit"]
    by_sha = zoo.load(f"hf://test-user/tiny-vqgan@{sha}")
    assert torch.equal(by_sha.encode(photos64).indices, want1)
    # a registered entry can point at a zoo-format repo and revision
    register_model(ModelEntry(name="test-zoo-format", family="vqgan", config=TINY_CONFIG, checkpoint_format="zoo",
                              hub_repo="test-user/tiny-vqgan", hub_revision="v1"), overwrite=True)
    named = zoo.load("test-zoo-format")
    assert named.name == "test-zoo-format" and torch.equal(named.encode(photos64).indices, want1)
    # the HF cache is laid out as huggingface_hub lays it out
    from huggingface_hub import constants

    repo_cache = Path(constants.HF_HUB_CACHE) / "models--test-user--tiny-vqgan"
    assert (repo_cache / "refs" / "v1").read_text() == sha
    assert (repo_cache / "snapshots" / sha / "model.safetensors").is_symlink()

    # offline: the same revisions load from the cache without a single request
    go_offline(monkeypatch)
    before = sum(online.requests.values())
    assert torch.equal(zoo.load("hf://test-user/tiny-vqgan@v1").encode(photos64).indices, want1)
    assert torch.equal(zoo.load("hf://test-user/tiny-vqgan").encode(photos64).indices, want2)
    assert torch.equal(zoo.load(f"hf://test-user/tiny-vqgan@{sha}").encode(photos64).indices, want1)
    assert sum(online.requests.values()) == before
    # ... and what was never downloaded is answered clearly
    with pytest.raises(OfflineError, match=r"needs 'config.json' from the hub repo test-user/tiny-vqgan at revision "
                                           r"v2.*not in the Hugging Face cache.*offline.*hf download"):
        zoo.load("hf://test-user/tiny-vqgan@v2")
    with pytest.raises(OfflineError, match="test-user/never-pulled"):
        zoo.load("hf://test-user/never-pulled")
    with pytest.raises(OfflineError, match="cannot push to test-user/x: huggingface_hub is offline"):
        first.push_to_hub("test-user/x")


def test_wrong_revision_or_missing_file_is_answered_clearly(pushed, online):
    with pytest.raises(InputError, match=r"revision 'v9' does not exist in hub repo test-user/tiny-vqgan"):
        zoo.load("hf://test-user/tiny-vqgan@v9")
    with pytest.raises(InputError, match=r"hub repo 'test-user/nothing-here' does not exist"):
        zoo.load("hf://test-user/nothing-here")
    online.repos.setdefault("test-user/card-only", Repo())
    online.commit("test-user/card-only", "main", {"README.md": b"---\nlicense: mit\n---\n"})
    with pytest.raises(InputError, match=r"test-user/card-only has no file 'config.json'.*config.json \+ "
                                         r"model.safetensors"):
        zoo.load("hf://test-user/card-only")
    with pytest.raises(InputError, match="user/repo"):
        zoo.load("hf://no-slash")


def _copy_repo(hub, src_sha: str, repo_id: str, change: dict) -> None:
    hub.repos[repo_id] = Repo()
    files = dict(hub.repos["test-user/tiny-vqgan"].commits[src_sha])
    files.update(change)
    hub.commit(repo_id, "main", files)


def test_tampered_weights_are_refused(pushed, online, monkeypatch):
    tree = online.repos["test-user/tiny-vqgan"].commits[pushed["v1"]["commit"]]
    weights = bytearray(tree["model.safetensors"])
    weights[-5] ^= 0xFF  # one byte of one tensor changed: still a valid safetensors file
    _copy_repo(online, pushed["v1"]["commit"], "test-user/tampered", {"model.safetensors": bytes(weights)})
    with pytest.raises(CheckpointError, match=r"model.safetensors was changed after it was written \(sha256 "
                                              r"[0-9a-f]{12}… but config.json records"):
        zoo.load("hf://test-user/tampered")
    # tampering inside the local HF cache after a good download is caught the same way, offline too
    zoo.load("hf://test-user/tiny-vqgan@v1")
    from huggingface_hub import constants

    blob = (Path(constants.HF_HUB_CACHE) / "models--test-user--tiny-vqgan" / "snapshots" / pushed["v1"]["commit"]
            / "model.safetensors").resolve()
    blob.write_bytes(bytes(weights))
    go_offline(monkeypatch)
    with pytest.raises(CheckpointError, match="changed after it was written.*Delete"):
        zoo.load("hf://test-user/tiny-vqgan@v1")


def test_config_that_does_not_fit_the_weights_is_refused(pushed, online):
    tree = online.repos["test-user/tiny-vqgan"].commits[pushed["v1"]["commit"]]
    meta = json.loads(tree["config.json"])
    meta["config"]["codebook_size"] = 65
    _copy_repo(online, pushed["v1"]["commit"], "test-user/mismatch", {"config.json": json.dumps(meta).encode()})
    with pytest.raises(CheckpointError, match=r"quantizer.embedding.weight \(64, 32\) vs model \(65, 32\)"):
        zoo.load("hf://test-user/mismatch")
    meta["config"] = {**meta["config"], "codebook_size": 64, "codebok_size": 3}
    _copy_repo(online, pushed["v1"]["commit"], "test-user/badkey", {"config.json": json.dumps(meta).encode()})
    with pytest.raises(CheckpointError, match="codebok_size"):
        zoo.load("hf://test-user/badkey")


# ---------------------------------------------------------------------------------------------------------------
# Named models: official file through the HF cache, converted once, kept as safetensors in the zoo cache
# ---------------------------------------------------------------------------------------------------------------
def official_bytes(model) -> bytes:
    """Our tiny VQGAN saved in the official layout (a torch pickle, identical key names but the codebook's)."""
    buf = io.BytesIO()
    torch.save({k.replace("quantizer.", "quantize.", 1): v.clone() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


def test_named_model_converts_once_then_loads_pickle_free(online, photos64, monkeypatch, tmp_path):
    import zoo.loading

    model = tiny(3)
    data = official_bytes(model)
    online.repos["test-org/official-tiny"] = Repo()
    online.commit("test-org/official-tiny", "main", {"maskgit.bin": data})
    register_model(ModelEntry(name="test-hub-vqgan", family="vqgan", config=TINY_CONFIG,
                              hub_repo="test-org/official-tiny", hub_file="maskgit.bin"), overwrite=True)
    want = model.encode(photos64).indices

    first = zoo.load("test-hub-vqgan")
    assert first.name == "test-hub-vqgan" and torch.equal(first.encode(photos64).indices, want)
    folders = list((tmp_path / "zoo" / "converted" / "test-hub-vqgan").iterdir())
    assert len(folders) == 1 and folders[0].name.startswith(hashlib.sha256(data).hexdigest()[:16])
    assert sorted(p.name for p in folders[0].iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folders[0] / "config.json").read_text())["source"]["sha256"] == hashlib.sha256(data).hexdigest()

    # the second load never unpickles: the official-file reader is disabled and it still loads, offline too
    def no_pickle(*a, **k):
        raise AssertionError("the official file was read again")

    import zoo.hub

    def no_hash(*a, **k):
        raise AssertionError("a file was hashed again")

    monkeypatch.setattr(zoo.loading, "load_file", no_pickle)
    monkeypatch.setattr(zoo.hub, "file_sha256", no_hash)  # verified at conversion; remembered by file identity
    again = zoo.load("test-hub-vqgan")
    assert torch.equal(again.encode(photos64).indices, want) and again.name == "test-hub-vqgan"
    go_offline(monkeypatch)
    assert torch.equal(zoo.load("test-hub-vqgan").encode(photos64).indices, want)

    # a new official file (another hash) is converted anew, into its own folder
    monkeypatch.undo()
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", online.endpoint)
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    newer = tiny(4)
    online.commit("test-org/official-tiny", "main", {"maskgit.bin": official_bytes(newer)})
    assert torch.equal(zoo.load("test-hub-vqgan").encode(photos64).indices, newer.encode(photos64).indices)
    assert len(list((tmp_path / "zoo" / "converted" / "test-hub-vqgan").iterdir())) == 2


def test_named_model_from_hand_made_cache_and_tampered_conversion(photos64, tmp_path, monkeypatch):
    """Offline, the official file comes from a cache laid out by hand; a changed converted copy is refused."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    model = tiny(5)
    add_to_cache(tmp_path / "hf", "test-org/cached-tiny", {"maskgit.bin": official_bytes(model)})
    register_model(ModelEntry(name="test-cached-vqgan", family="vqgan", config=TINY_CONFIG,
                              hub_repo="test-org/cached-tiny", hub_file="maskgit.bin"), overwrite=True)
    assert torch.equal(zoo.load("test-cached-vqgan").encode(photos64).indices, model.encode(photos64).indices)
    (folder,) = (tmp_path / "zoo" / "converted" / "test-cached-vqgan").iterdir()
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"test-cached-vqgan \(converted copy in .*changed after it was written"):
        zoo.load("test-cached-vqgan")


# ---------------------------------------------------------------------------------------------------------------
# Model cards
# ---------------------------------------------------------------------------------------------------------------
def test_card_renders_and_validates_with_model_card(online, tmp_path, monkeypatch):
    from huggingface_hub import ModelCard, constants

    from zoo.cards import check_card, read_eval_report

    report = tmp_path / "report.json"
    report.write_text(json.dumps({"results": [
        {"metric": "PSNR", "value": 21.5, "dataset": "scikit-image photos (2), 64x64",
         "protocol": "center crop, uint8 rounding"},
        {"metric": "rFID", "value": 3.25, "dataset": "ImageNet-1k val 50k, 256x256", "protocol": "torch-fidelity"}]}))
    model = tiny(6)
    model.name = "maskgit-vqgan-mini"
    register_model(ModelEntry(
        name="maskgit-vqgan-mini", family="vqgan", config=TINY_CONFIG, description="a tiny test VQGAN",
        metrics=(Metric("rFID", 2.28, "ImageNet-1k val 50k, 256x256", "TiTok protocol", "TiTok paper"),),
        license="apache-2.0", paper="https://arxiv.org/abs/2202.04200", citation="@inproceedings{chang2022maskgit}",
        tags=("test",)), overwrite=True)
    result = model.push_to_hub("test-user/card-demo", eval_report=report)
    assert online.requests["validate"] >= 1  # upload_folder sent the README to /api/validate-yaml, and it passed

    from zoo.hub import hf_file

    path = hf_file("test-user/card-demo", "README.md", result["commit"])
    card = ModelCard.load(path)
    text = path.read_text()
    assert check_card(text) == []
    monkeypatch.setattr(constants, "ENDPOINT", online.endpoint)
    card.validate()  # huggingface_hub's own validation round trip (POST /api/validate-yaml)
    assert card.data.library_name == "visual-tokenizer-zoo" and card.data.license == "apache-2.0"
    assert {"vqgan", "2d-tokens", "image-tokenization", "test"} <= set(card.data.tags)
    values = {(r.metric_name, r.metric_value) for r in card.data.eval_results}
    assert values == {("rFID", 2.28), ("PSNR (measured with visual-tokenizer-zoo)", 21.5),
                      ("rFID (measured with visual-tokenizer-zoo)", 3.25)}
    for needle in ("## Architecture", "4x4 (row-major)", "codebook sizes 64", "bits per token | 6 |", "TiTok protocol",
                   "center crop, uint8 rounding", "From `report.json`", 'zoo.load("hf://test-user/card-demo")',
                   "@inproceedings{chang2022maskgit}", "nearest codebook row"):
        assert needle in text, needle
    # a broken report is refused before anything is pushed
    report.write_text(json.dumps([{"metric": "PSNR", "value": "high"}]))
    with pytest.raises(InputError, match="needs 'metric', 'value' and 'dataset'"):
        read_eval_report(report)


def test_every_family_renders_a_valid_card():
    """The smallest registered entry of each built-in family renders (built on the meta device) and parses back."""
    from zoo.cards import card_info, check_card, render_card
    from zoo.config import config_from_dict
    from zoo.registry import get_entry, get_family, list_families

    names = [zoo.list_models(family=f)[0] for f in list_families() if zoo.list_models(family=f)]
    assert {get_entry(n).family for n in names} >= {"vqgan", "titok", "onedpiece", "imagefolder", "unitok"}
    for name in names:
        entry = get_entry(name)
        fam = get_family(entry.family)
        with torch.device("meta"):
            model = fam.tokenizer_cls(config_from_dict(fam.config_cls, dict(entry.config)))
        text = str(render_card(card_info(model, entry)))
        assert check_card(text) == [], name
        assert entry.license in text and f'zoo.load("{name}")' in text
    from zoo.cards import info_lines

    lines = info_lines("maskgit-vqgan")  # what `zoo info` adds
    assert "library visual-tokenizer-zoo" in lines[0] and "2-D grid 16x16 (row-major), 256 token(s)" in lines[1]


def test_cards_name_base_model_and_training_datasets():
    """Front matter the hub links on: the official repo converted weights come from, and the training data."""
    import yaml

    from zoo.cards import card_info, check_card, render_card
    from zoo.config import config_from_dict
    from zoo.registry import get_entry, get_family

    def front(name, **kw):
        entry = get_entry(name)
        fam = get_family(entry.family)
        with torch.device("meta"):
            model = fam.tokenizer_cls(config_from_dict(fam.config_cls, dict(entry.config)))
        text = str(render_card(card_info(model, entry, **kw)))
        assert check_card(text) == []
        return yaml.safe_load(text.split("---")[1])

    meta = front("titok-l32")
    assert meta["base_model"] == "yucornetto/tokenizer_titok_l32_imagenet" and meta["datasets"] == ["ILSVRC/imagenet-1k"]
    assert front("unitok")["datasets"] == ["mlfoundations/datacomp_1b"]
    assert "datasets" not in front("alit-small-in100") and "base_model" not in front("default")
    meta = front("default", base_model="me/base", datasets=["me/photos"])
    assert meta["base_model"] == "me/base" and meta["datasets"] == ["me/photos"]


# ---------------------------------------------------------------------------------------------------------------
# Command line: zoo convert, zoo push, zoo card
# ---------------------------------------------------------------------------------------------------------------
def test_cli_convert_then_push_then_pull(online, photos64, tmp_path, capsys):
    from zoo.cards import check_card
    from zoo.cli import main

    model = tiny(7)
    (tmp_path / "official.bin").write_bytes(official_bytes(model))
    register_model(ModelEntry(name="test-cli-vqgan", family="vqgan", config=TINY_CONFIG, license="mit",
                              hub_repo="test-org/not-used", hub_file="x.bin"), overwrite=True)
    assert main(["convert", "test-cli-vqgan", "--checkpoint", str(tmp_path / "official.bin"),
                 "-o", str(tmp_path / "conv")]) == 0
    assert sorted(p.name for p in (tmp_path / "conv").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert check_card((tmp_path / "conv" / "README.md").read_text()) == []
    want = model.encode(photos64).indices
    assert torch.equal(zoo.load(tmp_path / "conv").encode(photos64).indices, want)

    report = tmp_path / "report.json"
    report.write_text(json.dumps([{"metric": "PSNR", "value": 20.0, "dataset": "2 photos", "protocol": "center"}]))
    assert main(["push", str(tmp_path / "conv"), "--repo", "test-user/cli-demo", "--eval-report", str(report),
                 "--tag", "v1"]) == 0
    out = capsys.readouterr().out
    assert "pushed" in out and 'zoo.load("hf://test-user/cli-demo@' in out
    pulled = zoo.load("hf://test-user/cli-demo@v1")
    assert pulled.name == "test-cli-vqgan" and torch.equal(pulled.encode(photos64).indices, want)
    readme = online.repos["test-user/cli-demo"].commits[online.repos["test-user/cli-demo"].refs["v1"]]["README.md"]
    assert b"PSNR (measured with visual-tokenizer-zoo)" in readme and b"license: mit" in readme

    # user mistakes exit 2 with one line, no traceback
    assert main(["push", str(tmp_path / "conv"), "--repo", "no-slash"]) == 2
    assert "user/repo" in capsys.readouterr().err
    assert main(["convert", "test-cli-vqgan", "--checkpoint", str(tmp_path / "nope.bin"), "-o", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err

    assert main(["card", "maskgit-vqgan", "--repo", "me/maskgit"]) == 0
    assert 'zoo.load("hf://me/maskgit")' in capsys.readouterr().out


def test_zoo_eval_report_rows_become_measured_metrics(tmp_path, monkeypatch):
    """A report.json written by zoo eval (rows per model and budget, codecs too) gives the pushed model's rows."""
    report_mod = pytest.importorskip("zoo.eval.report")
    monkeypatch.setattr(report_mod, "rd_plot", lambda *a, **k: None)  # the plot is not what this test is about
    from zoo.cards import read_eval_report

    proto = {"size": 64, "crop": "shorter side to size, bicubic (antialias), centre crop",
             "quantize": "clamp to [0,1], x*255, round to uint8", "fid_features": "inception-2015-12-05"}
    rows = [{"model": "mini", "family": "vqgan", "num_tokens": None, "images": 50, "image_size": 64, "psnr": 21.25,
             "ssim": 0.61, "rfid": 12.5, "rfid_reference_n": 50, "protocol": proto,
             "fid_extractor": {"name": "inception", "sha256": "f" * 64}},
            {"model": "other", "family": "titok", "num_tokens": 32, "images": 50, "image_size": 64, "psnr": 19.0,
             "protocol": proto},
            {"model": "JPEG", "family": "codec", "num_tokens": None, "images": 50, "psnr": 25.0, "protocol": proto}]
    written = report_mod.write_report(rows, tmp_path / "ev", {"data": "kodak24"})
    metrics, source = read_eval_report(written["json"], "mini")
    assert source == "report.json"
    got = {m.name: m for m in metrics}
    assert set(got) == {"PSNR", "SSIM", "rFID"} and got["PSNR"].value == 21.25
    assert got["PSNR"].dataset == "kodak24 (50 images, 64px)" and "centre crop" in got["PSNR"].protocol
    assert "FID features: inception-2015-12-05 (sha256 ffffffffffff); reference: the same crops (N = 50)" \
        in got["rFID"].protocol
    with pytest.raises(InputError, match=r"has results for \['mini', 'other'\]; none is 'nope'"):
        read_eval_report(written["json"], "nope")


def test_from_pretrained_pulls_user_repo_like_other_hf_libraries(pushed, online, photos64, tmp_path):
    from zoo.api import Tokenizer

    want1, want2 = pushed["first"].encode(photos64).indices, pushed["second"].encode(photos64).indices
    latest = Tokenizer.from_pretrained("test-user/tiny-vqgan")  # no hf:// prefix, as in transformers
    assert torch.equal(latest.encode(photos64).indices, want2)
    cache = tmp_path / "own-cache"
    v1 = Tokenizer.from_pretrained("test-user/tiny-vqgan", revision="v1", cache_dir=cache, token="hf_dummy")
    assert torch.equal(v1.encode(photos64).indices, want1)
    assert (cache / "models--test-user--tiny-vqgan" / "refs" / "v1").read_text() == pushed["v1"]["commit"]
    # a local folder and a registered name still win over the hub reading
    assert Tokenizer.from_pretrained("default").name == "default"
    with pytest.raises(InputError, match="revision= goes with a hub repo"):
        Tokenizer.from_pretrained("default", revision="v1")


def test_unreachable_hub_is_huggingface_hubs_decision(tmp_path, monkeypatch):
    """No TCP probe of our own: huggingface_hub tries (through its proxy settings) and we name the file."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(OfflineError, match=r"config.json.*hub at http://127.0.0.1:9 cannot be reached.*hf download"):
        zoo.load("hf://test-user/nowhere")
    with pytest.raises(OfflineError, match="cannot push to test-user/x: the hub at http://127.0.0.1:9"):
        tiny(0).push_to_hub("test-user/x")


def test_generator_push_then_pull_by_name_and_revision(online, tmp_path, capsys):
    from zoo.cli import main
    from zoo.generate.api import MaskGITGenerator
    from zoo.generate.loading import load_generator, save_generator
    from zoo.generate.maskgit import MaskGITConfig, MaskGITSampling

    torch.manual_seed(0)
    config = MaskGITConfig(codebook_size=64, seq_len=16, num_classes=4, width=32, depth=2, heads=4, mlp_dim=64)
    gen = MaskGITGenerator(config, MaskGITSampling(num_steps=4), tokenizer="vqgan").eval()
    want = gen.sample([0, 3], seed=0).indices
    result = gen.push_to_hub("test-user/tiny-gen", tag="v1", datasets=["me/photos"])
    tree = online.repos["test-user/tiny-gen"].commits[result["commit"]]
    assert {"config.json", "model.safetensors", "README.md"} <= set(tree)
    assert b"datasets:\n- me/photos" in tree["README.md"] and b"library_name: visual-tokenizer-zoo" in tree["README.md"]
    pulled = load_generator("hf://test-user/tiny-gen@v1")
    assert torch.equal(pulled.sample([0, 3], seed=0).indices, want)
    # the command line pushes a generator folder with the same `zoo push`
    save_generator(gen, tmp_path / "gen")
    assert main(["push", str(tmp_path / "gen"), "--repo", "test-user/tiny-gen-cli"]) == 0
    assert "pushed generator" in capsys.readouterr().out
    assert torch.equal(load_generator("hf://test-user/tiny-gen-cli").sample([1], seed=0).indices,
                       gen.sample([1], seed=0).indices)
