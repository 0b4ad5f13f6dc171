"""ImageFolder against fixtures made by the official implementation.

Fixtures (data only; tests/fixtures/imagefolder/README.md says how they were made): lxa9867/ImageFolder at
76ddfb9a65912f01a74f864a17ee2f344cca33c5 (tokenizer/tokenizer_image/xqgan_model.py `VQModel`, quant.py
`VectorQuantizer2`): key/shape manifests of the released configs (configs/MSVR10P2-{4096,8192,16384}.yaml), a tiny
random-weight checkpoint at a size the official tables do not know (64x64 images, patch 8, width 32, scales
1..6) with the official config file, the same checkpoint as the training script pickles it (``ema``, ``model``,
ruamel-typed ``args``), the official outputs on real photos, and a lone quantizer at the released 10-scale schedule.
"""
import argparse
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
import zoo.families.imagefolder as imagefolder
from zoo import CheckpointError, Codes, ConfigError, InputError
from zoo.config import config_from_dict
from zoo.convert import imagefolder as convert
from zoo.convert.common import check_state_dict, drop, meta_state_dict, rename
from zoo.quant import MultiScaleResidualQuantizer
from zoo.registry import get_entry, get_family

D = Path(__file__).parent / "fixtures" / "imagefolder"
ATOL = 1e-4
HEADS = dict(encoder_heads=4, decoder_heads=2)  # the tiny sizes' heads (not readable from weights)
RELEASED = (1, 1, 2, 3, 3, 4, 5, 6, 8, 11)


def manifest() -> dict:
    return json.loads((D / "manifest.json").read_text())


@pytest.fixture(scope="module")
def tiny():
    return zoo.from_official("imagefolder", D / "tiny_official.safetensors", D / "tiny_config.yaml", **HEADS)


@pytest.fixture(scope="module")
def io():
    return load_file(str(D / "tiny_io.safetensors"))


def to01(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


# ---------------------------------------------------------------------------------------------------------------
# Released configs
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["imagefolder-4096", "imagefolder-8192", "imagefolder-16384"])
def test_released_manifest_loads_strictly(name):
    """Every released key is consumed or skipped by name, every model key filled, shapes equal (meta tensors)."""
    info = manifest()["models"][name]
    official = meta_state_dict(info["keys"])
    entry = get_entry(name)
    spec = get_family("imagefolder")
    config = config_from_dict(spec.config_cls, dict(entry.config))
    assert spec.config_from_official(info["official_config"], official) == config
    assert spec.config_from_official(None, official) == config  # a bare state dict of a release: same config
    kept, dropped = drop(official, spec.skip)
    assert {k.split(".")[0] for k in dropped} == {"semantic_model", "quantizes"}
    assert all(k.endswith("ema_vocab_hit_SV") for k in dropped if k.startswith("quantizes"))
    with torch.device("meta"):
        model = spec.tokenizer_cls(config)
    check_state_dict(model, spec.convert(kept, config), source=f"{name} manifest")
    ours = sum(p.numel() for p in model.parameters())
    assert ours == info["num_params"] - info["num_params_by_prefix"]["semantic_model"]
    assert model.spec.max_tokens == 286 and model.spec.scales == tuple(p * p for p in RELEASED)
    assert model.spec.codebook_sizes == (config.codebook_size,) * 2


def test_registered_models_carry_hub_files_and_published_numbers():
    for k, rfid in ((4096, 0.80), (8192, 0.70), (16384, 0.67)):
        entry = get_entry(f"imagefolder-{k}")
        assert (entry.hub_repo, entry.hub_file) == ("ang9867/imagefolder", f"imagenet-{k}.pt")
        metric = next(m for m in entry.metrics if m.name == "rFID")
        assert metric.value == rfid and "ADM" in metric.protocol


# ---------------------------------------------------------------------------------------------------------------
# Tiny official checkpoint: encode, decode, prefixes
# ---------------------------------------------------------------------------------------------------------------
def test_tiny_parity_indices_and_images(tiny, io):
    """Identical indices for both branches; images within 1e-4 of the official decoder (in [0, 1])."""
    assert tiny.config.image_size == 64 and tiny.config.scale_sides == (1, 1, 2, 3, 3, 4, 5, 6)
    images = io["images"]
    with torch.no_grad():
        assert torch.allclose(tiny.encoder(images * 2 - 1), io["encoder_tokens"], atol=ATOL)
        B, s = images.shape[0], tiny.config.latent_side
        official = [f.reshape(B, -1, s, s) for f in io["features"].chunk(2, dim=2)]
        for ours, theirs in zip(tiny.features(images), official):
            assert torch.allclose(ours, theirs, atol=ATOL)
    codes = tiny.encode(images)
    assert codes.indices.shape == (3, 101, 2) and codes.scales == (1, 1, 4, 9, 9, 16, 25, 36)
    assert codes.codebook_sizes == (64, 64)
    for g in range(2):
        assert torch.equal(codes.indices[..., g], io[f"indices_branch{g}"])
        assert codes.indices[..., g].unique().numel() > 40  # varied codes
    raw = tiny.decode(codes, clamp=False)
    assert torch.allclose(raw, to01(io["decoded"]), atol=ATOL), (raw - to01(io["decoded"])).abs().max()
    assert torch.allclose(tiny.decode(codes), to01(io["reconstructed_clamped"]), atol=ATOL)
    assert raw.min() < 0 and raw.max() > 1  # unclamped, as the fixture is


def test_tiny_cumulative_reconstructions_per_scale(tiny, io):
    """The quantizer's running reconstruction after every scale equals the official f_hat list."""
    B, s = 3, tiny.config.latent_side
    feats = [f.reshape(B, -1, s, s) for f in io["features"].chunk(2, dim=2)]
    for g, q in enumerate(tiny.quantizer.branches):
        indices, f_hats = q.quantize_with_reconstructions(feats[g])
        assert torch.equal(indices, io[f"indices_branch{g}"])
        assert torch.allclose(torch.stack(f_hats), io[f"f_hats_branch{g}"], atol=ATOL)


@pytest.mark.parametrize("n_scales", [3, 6])
def test_decoding_a_prefix_of_scales(tiny, io, n_scales):
    """A truncated scale prefix decodes to the official coarse reconstruction (the release's per-scale images)."""
    k = sum(p * p for p in tiny.config.scale_sides[:n_scales])
    head = tiny.encode(io["images"], num_tokens=k)
    full = tiny.encode(io["images"])
    assert head.num_tokens == k and torch.equal(head.indices, full.indices[:, :k])
    assert head.scales == full.scales[:n_scales]
    out = tiny.decode(head, clamp=False)
    assert torch.allclose(out, to01(io[f"decoded_prefix{n_scales}"]), atol=ATOL)


def test_mixed_prefix_lengths_in_one_batch(tiny, io):
    codes = tiny.encode(io["images"])
    mixed = Codes(codes.indices, lengths=torch.tensor([6, 101, 40]), scales=codes.scales)
    out = tiny.decode(mixed, clamp=False)
    assert torch.allclose(out[0], to01(io["decoded_prefix3"][0]), atol=ATOL)
    assert torch.allclose(out[1], to01(io["decoded"][1]), atol=ATOL)
    assert torch.allclose(out[2], to01(io["decoded_prefix6"][2]), atol=ATOL)


def test_budgets_are_whole_scales(tiny, io):
    spec = tiny.spec
    assert spec.token_layout == "multiscale" and spec.token_choices == (1, 2, 6, 15, 24, 40, 65, 101)
    with pytest.raises(InputError, match="must be one of"):
        tiny.encode(io["images"], num_tokens=7)
    codes = tiny.encode(io["images"])
    with pytest.raises(InputError, match="whole scales"):
        tiny.decode(Codes(codes.indices[:, :7]))
    with pytest.raises(InputError, match="schedule"):
        tiny.decode(Codes(codes.indices[:, :6], scales=(2, 4)))


def test_teacher_forcing_input_matches_official(tiny, io):
    """The next-scale AR input (the release's idxBl_to_var_input, branches concatenated on channels)."""
    codes = tiny.encode(io["images"])
    assert torch.allclose(tiny.teacher_forcing_input(codes), io["var_input"], atol=ATOL)


# ---------------------------------------------------------------------------------------------------------------
# Folding
# ---------------------------------------------------------------------------------------------------------------
def test_fold_unfold_round_trip(tiny, io, tmp_path):
    codes = tiny.encode(io["images"])
    folded = codes.fold()
    assert folded.indices.shape == (3, 101, 1) and folded.codebook_sizes == (64 * 64,)
    assert folded.scales == codes.scales and folded.folded_sizes == (64, 64)
    assert torch.equal(folded.indices[..., 0], codes.indices[..., 0] * 64 + codes.indices[..., 1])
    back = folded.unfold()
    assert torch.equal(back.indices, codes.indices) and back.codebook_sizes == codes.codebook_sizes
    assert back.folded_sizes is None and back.model == codes.model
    folded.save(tmp_path / "folded.codes")
    again = Codes.load(tmp_path / "folded.codes")
    assert again.folded_sizes == (64, 64) and torch.equal(again.unfold().indices, codes.indices)
    assert torch.equal(folded[1:].unfold().indices, codes.indices[1:])
    with pytest.raises(InputError, match="unfold"):
        tiny.decode(folded)
    assert torch.equal(tiny.decode(back), tiny.decode(codes))
    with pytest.raises(InputError, match="already folded"):
        folded.fold()
    with pytest.raises(InputError, match="not folded"):
        codes.unfold()


def test_fold_is_generic_over_groups():
    g = torch.Generator().manual_seed(0)
    sizes = (5, 7, 3)
    idx = torch.stack([torch.randint(0, k, (2, 9), generator=g) for k in sizes], dim=-1)
    codes = Codes(idx, lengths=torch.tensor([9, 4]), codebook_sizes=sizes)
    folded = codes.fold()
    assert folded.indices.max() < 5 * 7 * 3 and torch.equal(folded.lengths, codes.lengths)
    assert torch.equal(folded.unfold().indices, idx)
    single = Codes(idx[..., :1], codebook_sizes=(5,))
    assert torch.equal(single.fold().indices, single.indices)
    assert torch.equal(single.fold().unfold().indices, single.indices)


# ---------------------------------------------------------------------------------------------------------------
# Training pieces
# ---------------------------------------------------------------------------------------------------------------
def test_training_forward_and_semantic_loss_match_official(tiny, io):
    """VQModel.forward in eval mode: reconstruction, codebook and commitment losses, semantic loss."""
    images = io["images"]
    out = tiny(images)
    assert torch.allclose(out["images"], to01(io["forward_images"]), atol=ATOL)
    q = out["quantizer"]
    assert torch.allclose(q.codebook_loss, io["forward_vq_loss"][0], rtol=1e-5)
    assert torch.allclose(q.commitment_loss, io["forward_commit_loss"][0], rtol=1e-5)
    assert q.quantized.shape == (3, 16, 6, 6) and len(out["branches"]) == 2
    teacher = imagefolder.semantic_teacher(D / "tiny_official.safetensors", heads=4)
    mean, std = torch.tensor(imagefolder.IMAGENET_MEAN), torch.tensor(imagefolder.IMAGENET_STD)
    with torch.no_grad():
        cls = teacher((images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    assert torch.allclose(cls, io["teacher_cls"], atol=ATOL)
    semantic = imagefolder.SemanticLoss.for_tokenizer(tiny, teacher)
    loss = semantic(images, out["branches"][-1], tiny.quant_conv, exclude=int(3 * tiny.config.quantizer_dropout))
    assert torch.allclose(loss, io["forward_sem_loss"][0], atol=1e-5)
    loss.backward()  # reaches the encoder and quant_conv, never the frozen teacher
    assert tiny.quant_conv.weight.grad is not None and tiny.encoder.latent_tokens.grad is not None
    assert all(p.grad is None for p in teacher.parameters())
    tiny.zero_grad(set_to_none=True)


def test_quantizer_dropout_matches_official_training_forward(tiny, io):
    """VectorQuantizer2.forward in training mode with a given dropout draw (5 of 10 samples cut)."""
    quantizer = tiny.quantizer.branches[1]
    keep = io["dropout_keep"].clone()
    keep[5:] = len(quantizer.scales)  # the release applies the draw to the first int(B * codebook_drop) samples
    quantizer.train()
    try:
        out = quantizer(io["dropout_features"], keep=keep)
    finally:
        quantizer.eval()
    assert torch.allclose(out.quantized, io["dropout_f_hat"], atol=ATOL)
    assert torch.allclose(out.codebook_loss, io["dropout_vq_loss"][0], rtol=1e-5)
    assert torch.allclose(out.commitment_loss, io["dropout_commit_loss"][0], rtol=1e-5)


def test_quantizer_dropout_draw_is_shared_by_the_branches(tiny, io):
    tiny.train()
    try:
        torch.manual_seed(3)
        keep = tiny(io["images"].repeat(4, 1, 1, 1)[:10])["keep"]
        torch.manual_seed(3)
        drawn = torch.randint(3, 9, (10,))  # U{start_drop..S}, one per sample, from the global RNG
    finally:
        tiny.eval()
    assert keep.tolist() == [int(drawn[0])] + [8] * 9  # only int(10 * 0.1) = 1 sample is cut
    assert tiny(io["images"])["keep"] is None  # eval: all scales


# ---------------------------------------------------------------------------------------------------------------
# The released-schedule quantizer
# ---------------------------------------------------------------------------------------------------------------
def test_released_schedule_quantizer_matches_official():
    """VectorQuantizer2 at v_patch_nums [1,1,2,3,3,4,5,6,8,11] (four shared φ, cosine lookup), 11x11 inputs."""
    data = load_file(str(D / "quant_io.safetensors"))
    official = {"quantizes.0." + k[len("official."):]: v for k, v in data.items() if k.startswith("official.")}
    ours = rename({k: v for k, v in official.items() if not k.endswith("ema_vocab_hit_SV")}, convert.RULES)
    q = MultiScaleResidualQuantizer(64, 8, RELEASED, l2_norm=True, phi_count=4)
    q.load_state_dict({k[len("quantizer.branches.0."):]: v for k, v in ours.items()}, strict=True)
    assert q.phi_index == (0, 0, 1, 1, 1, 2, 2, 3, 3, 3)
    indices, f_hats = q.eval().quantize_with_reconstructions(data["features"])
    assert indices.shape == (3, 286) and torch.equal(indices, data["indices"])
    assert torch.allclose(torch.stack(f_hats), data["f_hats"], atol=ATOL)
    assert torch.allclose(q.var_input(indices), data["var_input"], atol=ATOL)
    for n, f_hat in zip((1, 2, 6, 15, 24, 40, 65, 101, 165, 286), data["f_hats"]):  # every prefix decodes
        assert torch.allclose(q.lookup(indices[:, :n]), f_hat, atol=ATOL)


# ---------------------------------------------------------------------------------------------------------------
# Official files: pickles with args, strictness, sizes the official tables do not know
# ---------------------------------------------------------------------------------------------------------------
def test_training_checkpoint_pickle_loads_safely_and_takes_ema(tiny, io):
    """tiny_official.pt is what xqgan_train.py saves (ema, model, args with ruamel.yaml types), loaded with
    weights_only=True and inert stand-ins; the config comes from the pickled args; `ema` wins over `model`."""
    with pytest.raises(pickle.UnpicklingError):
        with torch.serialization.safe_globals([argparse.Namespace]):
            torch.load(D / "tiny_official.pt", weights_only=True)
    tok = zoo.from_official("imagefolder", D / "tiny_official.pt", **HEADS)  # config from the embedded args
    assert tok.config == tiny.config
    images = io["images"]
    assert torch.equal(tok.encode(images).indices, tiny.encode(images).indices)
    assert torch.allclose(tok.decode(tok.encode(images), clamp=False), to01(io["decoded"]), atol=ATOL)
    raw = zoo.convert.common.load_file(D / "tiny_official.pt", convert.ALLOWED_GLOBALS)
    state, args = convert.extract(raw)
    key = "decoder.to_pixel.model.bias"  # the one tensor where the file's `model` differs from its `ema`
    assert torch.equal(state[key], raw["ema"][key]) and not torch.equal(state[key], raw["model"][key])
    assert args["v_patch_nums"] == [1, 1, 2, 3, 3, 4, 5, 6] and type(args["v_patch_nums"]) is list
    assert args["lr"] == pytest.approx(3e-5) and args["encoder_model"] == "vit_zootiny_patch14_dinov2.lvd142m"


def test_load_by_registered_name_with_an_official_file(tiny, io):
    from zoo.registry import ModelEntry, register_model

    register_model(ModelEntry(name="test-imagefolder-tiny", family="imagefolder",
                              config=vars(tiny.config)), overwrite=True)
    tok = zoo.load("test-imagefolder-tiny", checkpoint=D / "tiny_official.pt")
    assert tok.name == "test-imagefolder-tiny"
    codes = tok.encode(io["images"], num_tokens=40)
    assert codes.model == "test-imagefolder-tiny" and torch.equal(codes.indices, tiny.encode(io["images"]).indices[:, :40])


def test_folder_round_trip_and_cli_prefix_grid(tiny, tmp_path):
    """save_pretrained / zoo.load of our folder, and `zoo reconstruct --tokens` over scale prefixes on photos."""
    from PIL import Image

    from conftest import photo, photo_batch
    from zoo.cli import main

    tiny.save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    images = photo_batch(64, ("astronaut", "coffee"))
    assert again.config == tiny.config and torch.equal(again.encode(images).indices, tiny.encode(images).indices)
    Image.fromarray(photo("chelsea")).save(tmp_path / "chelsea.png")
    out = tmp_path / "rec"
    assert main(["reconstruct", str(tmp_path / "chelsea.png"), "-m", str(tmp_path / "m"), "--tokens", "6,40,101",
                 "-o", str(out), "--device", "cpu", "-q"]) == 0
    assert {p.name for p in out.glob("*.png")} >= {"chelsea_k6.png", "chelsea_k101.png", "grid.png"}


def test_unknown_official_size_needs_heads():
    with pytest.raises(ConfigError, match="pass encoder_heads=N"):
        zoo.from_official("imagefolder", D / "tiny_official.safetensors", D / "tiny_config.yaml")


def test_wrong_official_checkpoints_are_refused(tmp_path):
    state = load_file(str(D / "tiny_official.safetensors"))
    bad = dict(state)
    bad["encoder.lvl1LC"] = torch.zeros_like(state["encoder.lvl1LC"])
    with pytest.raises(CheckpointError, match="lvl1LC"):
        zoo.from_official("imagefolder", bad, D / "tiny_config.yaml", **HEADS)
    bad = dict(state)
    bad["decoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unexpected 1 key"):
        zoo.from_official("imagefolder", bad, D / "tiny_config.yaml", **HEADS)
    with pytest.raises(CheckpointError, match="codebook_size=128"):
        zoo.from_official("imagefolder", state, {"codebook_size": 128, "v_patch_nums": [1, 1, 2, 3, 3, 4, 5, 6]},
                          **HEADS)
    with pytest.raises(ConfigError, match="v_patch_nums"):
        zoo.from_official("imagefolder", state, None, **HEADS)
