"""Generation: released MaskGIT generators against fixtures made by the official code (data only), the generator
interface, loading errors, the CLI, and a generic generator trained on codes of real photos."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.convert.common import check_state_dict, drop, meta_state_dict
from zoo.errors import CheckpointError, InputError, OfflineError, UnknownModelError
from zoo.generate import (MaskGITGenerator, build_generator, from_official, get_generator_entry, list_generators,
                          load_generator, save_generator)
from zoo.generate.convert import SKIP, config_from_official, convert_state_dict, sampling_from_official
from zoo.generate.maskgit import MaskGITConfig, MaskGITSampling

FIX = Path(__file__).parent / "fixtures" / "generators"
RELEASED = ["maskgit-titok-l32", "maskgit-titok-b64", "maskgit-titok-s128", "maskgit-onedpiece-s-256",
            "maskgit-onedpiece-b-256", "maskgit-onedpiece-l-256"]
# the sampler settings the fixture script ran the official `generate` with (make_fixtures.py, see README.md)
SAMPLERS = {
    "linear": dict(guidance=4.5, guidance_decay="linear", temperature=9.5, softmax_annealing=True, num_steps=4),
    "power_cosine": dict(guidance=6.9, guidance_decay="power-cosine", guidance_pow=3.0, temperature=2.8,
                         softmax_annealing=True, num_steps=6),
    "constant": dict(guidance=3.0, guidance_decay="constant", temperature=4.5, softmax_annealing=False, num_steps=3),
}
TINY = dict(codebook_size=64, seq_len=16, num_classes=4, width=32, depth=2, heads=4, mlp_dim=64)


def manifests() -> dict:
    out = {}
    for f in ("manifest_titok.json", "manifest_onedpiece.json"):
        out.update(json.loads((FIX / f).read_text())["models"])
    return out


# ---- released configs: manifests of the official models load strictly (meta tensors, nothing allocated) ----
@pytest.mark.parametrize("name", RELEASED)
def test_released_manifest_loads_strictly(name):
    m = manifests()[name]
    official = meta_state_dict(m["keys"])
    entry = get_generator_entry(name)
    ours = config_from_official(m["official_config"], official)
    assert ours == MaskGITConfig(**entry.config)  # the registered config is the one the official code builds
    assert sampling_from_official(m["official_config"]) == MaskGITSampling(
        **{**entry.sampling, "softmax_annealing": False})  # the config's settings are the registered defaults
    with torch.device("meta"):
        gen = MaskGITGenerator(ours)
    check_state_dict(gen, convert_state_dict(drop(official, SKIP)[0]), name)
    assert sum(p.numel() for p in gen.parameters()) == m["num_params"]


def test_registry_names_tokenizers_and_gfid():
    assert set(RELEASED) <= set(list_generators())
    for name in RELEASED:
        e = get_generator_entry(name)
        assert zoo.get_entry(e.tokenizer).name == e.tokenizer  # pairs with a registered tokenizer
        assert e.hub_repo and e.hub_file and e.metrics[0].name == "gFID" and "50k" in e.metrics[0].dataset
    assert get_generator_entry("maskgit-titok-s128").config["arch"] == "uvit"
    with pytest.raises(UnknownModelError, match="maskgit-titok-l32"):
        get_generator_entry("maskgit-titok-l33")


def test_released_names_are_registered_before_any_user_entry(monkeypatch):
    """Even as the very first use of the registry, a user's entry cannot replace a released name by accident."""
    import zoo.generate.registry as registry

    monkeypatch.setattr(registry, "_GENERATORS", {})
    monkeypatch.setattr(registry, "_BUILTINS_LOADED", False)
    mine = zoo.generate.GeneratorEntry(name="var-d16", family="var", tokenizer="var-vqvae", config={}, sampling={})
    with pytest.raises(ValueError, match="'var-d16' is already registered.*overwrite=True"):
        registry.register_generator(mine)
    assert get_generator_entry("var-d16").hub_file == "var_d16.pth"
    registry.register_generator(mine, overwrite=True)
    assert get_generator_entry("var-d16") is mine and set(RELEASED) <= set(list_generators())


# ---- tiny official-layout generators: logits and sampled codes match the official implementation ----
@pytest.fixture(scope="module", params=["bert", "uvit"])
def tiny_official(request):
    tag = request.param
    cfg = json.loads((FIX / f"tiny_{tag}_config.json").read_text())
    gen = from_official(FIX / f"tiny_{tag}_official.safetensors", config=cfg)
    return tag, gen, load_file(str(FIX / f"tiny_{tag}_io.safetensors"))


def test_tiny_official_logits_match(tiny_official):
    tag, gen, io = tiny_official
    assert gen.config.arch == tag and gen.config.num_classes == 10 and gen.config.seq_len == 16
    with torch.no_grad():
        cond = gen(io["ids"], io["labels"])
        uncond = gen(io["ids"], io["labels"], torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(cond, io["logits_cond"], atol=1e-4, rtol=0)
    torch.testing.assert_close(uncond, io["logits_uncond"], atol=1e-4, rtol=0)
    assert not torch.allclose(cond, uncond, atol=1e-2)  # the class token matters


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_tiny_official_sampled_codes_match(tiny_official, sampler):
    _, gen, io = tiny_official
    codes = gen.sample(io["labels"], seed=1234, **SAMPLERS[sampler])  # official: torch.manual_seed(1234)
    assert codes.indices.shape == (3, 16, 1) and codes.codebook_sizes == (64,)
    assert torch.equal(codes.indices[..., 0], io[f"sample_{sampler}"])


def test_guided_steps_run_one_pass_over_cond_and_uncond(tiny_official):
    """The release runs the conditional and unconditional passes one after the other; the zoo runs them as one
    2B batch (each weight read once per step) and still samples the official codes (test above)."""
    _, gen, io = tiny_official
    calls = []
    hook = gen.model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        gen.sample(io["labels"], seed=1234, **SAMPLERS["constant"])
    finally:
        hook.remove()
    assert calls == [2 * 3] * SAMPLERS["constant"]["num_steps"]


def test_strict_loading_refuses_missing_and_extra_keys():
    sd = load_file(str(FIX / "tiny_bert_official.safetensors"))
    cfg = json.loads((FIX / "tiny_bert_config.json").read_text())
    bad = dict(sd)
    bad.pop("model.encoder.layer.1.output.LayerNorm.bias")
    with pytest.raises(CheckpointError, match="missing"):
        from_official(bad, config=cfg)
    extra = dict(sd, **{"model.pooler.dense.weight": torch.zeros(32, 32)})
    with pytest.raises(CheckpointError, match="unexpected"):
        from_official(extra, config=cfg)
    with pytest.raises(CheckpointError, match="neither"):
        from_official({"foo.weight": torch.zeros(2)})


# ---- the interface: labels, seeds, tokenizer pairing, loading errors ----
@pytest.fixture(scope="module")
def tiny_gen():
    torch.manual_seed(0)
    return build_generator(TINY, dict(num_steps=4, temperature=2.0, guidance=2.0))


def test_sampling_is_deterministic_under_a_seed(tiny_gen):
    a = tiny_gen.sample([0, 1, 2, 3], seed=7)
    b = tiny_gen.sample([0, 1, 2, 3], seed=7)
    c = tiny_gen.sample([0, 1, 2, 3], seed=8)
    assert torch.equal(a.indices, b.indices) and not torch.equal(a.indices, c.indices)
    assert a.indices.min() >= 0 and a.indices.max() < 64
    split = tiny_gen.sample([0, 1, 2, 3], seed=7, batch_size=2)  # one generator drawn through the batches
    assert split.indices.shape == a.indices.shape


@pytest.mark.parametrize("labels", [[4], [-1], [0, 99]])
def test_out_of_range_labels_are_refused(tiny_gen, labels):
    with pytest.raises(InputError, match="out of range"):
        tiny_gen.sample(labels)


def test_bad_label_types_and_settings(tiny_gen):
    with pytest.raises(InputError):
        tiny_gen.sample(torch.tensor([0.5]))
    with pytest.raises(InputError, match="empty"):
        tiny_gen.sample([])
    with pytest.raises(InputError, match="unknown sampler setting"):
        tiny_gen.sample([0], top_q=3)
    with pytest.raises(InputError, match="guidance_decay"):
        tiny_gen.sample([0], guidance_decay="cosine")


def test_wrong_tokenizer_is_refused():
    from zoo.families.vqgan import TINY_CONFIG

    tok = zoo.build("vqgan", TINY_CONFIG).eval()  # 4x4 = 16 tokens, codebook TINY_CONFIG["codebook_size"]
    tok.name = "some-other-tokenizer"
    gen = build_generator({**TINY, "codebook_size": tok.spec.codebook_sizes[0]}, tokenizer="titok-l32")
    with pytest.raises(InputError, match="pairs with tokenizer 'titok-l32'"):
        gen.generate_images(tok, [0])
    gen.tokenizer = None  # unnamed: the code layout still has to fit
    assert gen.generate_images(tok, [0, 1], seed=0).shape == (2, 3, 64, 64)
    other = build_generator({**TINY, "codebook_size": 4096})
    with pytest.raises(InputError, match="codebooks"):
        other.check_tokenizer(tok)
    longer = build_generator({**TINY, "codebook_size": tok.spec.codebook_sizes[0], "seq_len": 32})
    with pytest.raises(InputError, match="32 tokens"):
        longer.check_tokenizer(tok)


def test_missing_checkpoint_and_offline_hub():
    with pytest.raises(CheckpointError, match="not found"):
        load_generator("maskgit-titok-l32", checkpoint="/nonexistent/generator_titok_l32.bin")
    with pytest.raises(OfflineError, match="yucornetto/generator_titok_l32_imagenet"):
        load_generator("maskgit-titok-l32")
    with pytest.raises(UnknownModelError):
        load_generator("no-such-generator")


def test_named_generator_loads_an_official_file(tmp_path):
    """load_generator(name, checkpoint=official file): the registered config + our key map, strictly."""
    sd = load_file(str(FIX / "tiny_bert_official.safetensors"))
    sd["model.embeddings.position_ids"] = torch.arange(17)[None]  # older transformers saved this buffer
    torch.save(sd, tmp_path / "pytorch_model.bin")
    zoo.generate.register_generator(zoo.generate.GeneratorEntry(
        name="test-tiny-bert", family="maskgit", tokenizer="titok-l32", sampling=SAMPLERS["constant"],
        config=dict(codebook_size=64, seq_len=16, num_classes=10, width=32, depth=2, heads=4, mlp_dim=64)),
        overwrite=True)
    gen = load_generator("test-tiny-bert", checkpoint=tmp_path / "pytorch_model.bin")
    io = load_file(str(FIX / "tiny_bert_io.safetensors"))
    assert gen.name == "test-tiny-bert" and gen.tokenizer == "titok-l32"
    assert torch.equal(gen.sample(io["labels"], seed=1234).indices[..., 0], io["sample_constant"])


def test_save_and_load_folder_roundtrip(tiny_gen, tmp_path):
    save_generator(tiny_gen, tmp_path / "g")
    again = load_generator(tmp_path / "g")
    assert again.sampling == tiny_gen.sampling and again.config == tiny_gen.config
    assert torch.equal(again.sample([1, 2], seed=3).indices, tiny_gen.sample([1, 2], seed=3).indices)
    (tmp_path / "g" / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(CheckpointError):
        load_generator(tmp_path / "g")


# ---- a generic generator trained with its recipe on codes of real photos; the CLI ----
def test_recipe_trains_on_photo_codes_and_cli_generates(tmp_path, capsys, monkeypatch):
    from zoo.cli import main
    from zoo.families.vqgan import TINY_CONFIG
    from zoo.generate.codes_cache import load_code_cache
    from zoo.generate.train import train_generator

    torch.manual_seed(0)
    zoo.save_pretrained(zoo.build("vqgan", TINY_CONFIG), tmp_path / "tok")
    recipe = Path(__file__).parents[1] / "recipes" / "generator" / "tiny.yaml"
    overrides = [f"tokenizer={tmp_path / 'tok'}", f"cache_dir={tmp_path / 'cache'}", "train.max_steps=50"]
    result = train_generator(recipe, overrides, output=tmp_path / "run", log=lambda *a: None)
    codes, labels, meta = load_code_cache(result.cache)
    assert codes.indices.shape == (16, 16, 1) and sorted(set(labels.tolist())) == [0, 1, 2, 3]
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < first - 0.5, (first, last)  # starts near ln(64) = 4.16
    again = train_generator(recipe, overrides + ["train.max_steps=1"], output=tmp_path / "run2", log=lambda *a: None)
    assert again.cache == result.cache  # the codes were cached, not encoded twice

    out = tmp_path / "samples"
    rc = main(["generate", "-g", str(result.output), "--class", "0,3", "-n", "4", "--seed", "0", "-o", str(out),
               "--device", "cpu", "-q"])
    assert rc == 0 and (out / "grid.png").is_file()
    assert sorted(p.name for p in out.glob("0*.png")) == ["00000_class0.png", "00001_class3.png",
                                                          "00002_class0.png", "00003_class3.png"]
    first_run = (out / "00000_class0.png").read_bytes()
    main(["generate", "-g", str(result.output), "--class", "0,3", "-n", "4", "--seed", "0", "-o", str(out),
          "--device", "cpu", "-q"])
    assert (out / "00000_class0.png").read_bytes() == first_run  # same seed, same image
    compiled = []
    real_compile = zoo.generate.Generator.compile
    monkeypatch.setattr(zoo.generate.Generator, "compile",
                        lambda self, **kw: compiled.append(kw) or real_compile(self, **kw))
    main(["generate", "-g", str(result.output), "--class", "0,3", "-n", "4", "--seed", "0", "-o", str(out),
          "--device", "cpu", "-q", "--compile", "eager"])
    assert compiled == [{"backend": "eager"}]
    assert (out / "00000_class0.png").read_bytes() == first_run  # compiled: the same codes
    assert main(["generate", "-g", str(result.output), "--class", "9", "-o", str(out), "--device", "cpu"]) == 2
    assert "out of range" in capsys.readouterr().err


# ---- ImageFolder's VAR-d17 through the generator interface (fixtures: tests/fixtures/var, official code) ----
VAR_FIX = Path(__file__).parent / "fixtures" / "var"


def test_var_d17_manifest_matches_the_registered_generator():
    from zoo.generate.var import VARConfig, VARGenerator

    info = json.loads((VAR_FIX / "manifest.json").read_text())["models"]["imagefolder-var-d17-4096"]
    entry = get_generator_entry("var-d17-imagefolder-4096")
    assert entry.family == "var" and zoo.get_entry(entry.tokenizer).family == "imagefolder"
    official = meta_state_dict(info["keys"])
    from zoo.convert import var as var_convert

    kwargs = var_convert.config_from_official(info["official_config"], official)
    assert VARConfig(**{**kwargs, "scales": list(kwargs["scales"])}) == VARConfig(**entry.config)
    with torch.device("meta"):
        gen = VARGenerator(VARConfig(**entry.config))
    ours = {f"model.{k}": v for k, v in var_convert.convert_state_dict(drop(official, var_convert.SKIP)[0]).items()}
    check_state_dict(gen, ours, "VAR-d17 manifest")
    assert gen.code_layout() == ((4096, 4096), 286)


def test_var_samples_the_official_codes_and_images_through_its_tokenizer():
    io = load_file(str(VAR_FIX / "tiny_var_io.safetensors"))
    gen = zoo.from_official("var", load_file(str(VAR_FIX / "tiny_var.safetensors")), config={"pn": "1_1_2_3_3_4_5_6"})
    d = Path(__file__).parent / "fixtures" / "imagefolder"
    tok = zoo.from_official("imagefolder", d / "tiny_official.safetensors", d / "tiny_config.yaml",
                            encoder_heads=4, decoder_heads=2)
    kw = dict(seed=int(io["sample_seed"]), guidance=float(io["sample_cfg"]), top_k=int(io["sample_top_k"]),
              top_p=float(io["sample_top_p"]))
    with pytest.raises(InputError, match="attach"):
        gen.sample(io["sample_labels"], **kw)
    with torch.no_grad():
        torch.testing.assert_close(gen(io["labels"], io["var_input"]), io["logits"], atol=1e-4, rtol=0)
    images = gen.generate_images(tok, io["sample_labels"], **kw)
    torch.testing.assert_close(images, io["sample_images"], atol=1e-4, rtol=0)
    codes = gen.sample(io["sample_labels"], **kw)  # both branches per position: [B, 101, 2], the official codes
    assert codes.scales == tok.spec.scales and codes.codebook_sizes == (64, 64)
    assert torch.equal(codes.indices[..., 0], io["sample_indices_branch0"])
    assert torch.equal(codes.indices[..., 1], io["sample_indices_branch1"])
    assert torch.equal(codes.fold().unfold().indices, codes.indices)
    with pytest.raises(InputError, match="unknown sampler setting"):
        gen.sample([1], num_steps=8)
    from zoo.families.vqgan import TINY_CONFIG

    with pytest.raises(InputError):
        gen.attach(zoo.build("vqgan", TINY_CONFIG))


# ---- generation FID against cached reference statistics ----
def test_generation_fid_against_reference_statistics(tmp_path):
    """MaskGIT samples decoded by a tiny tokenizer, scored against a reference .npz (any N); the lead's AR test
    (tests/test_ar_generator.py) covers the grouped generator and a mismatched extractor."""
    from conftest import photo_batch
    from zoo.eval import FeatureStats, ReferenceStats, build_extractor, protocol
    from zoo.eval.testing import tiny_extractor
    from zoo.families.vqgan import TINY_CONFIG
    from zoo.generate.fid import balanced_labels, generation_fid
    from zoo.images import to_uint8

    ext = build_extractor(tiny_extractor())
    real = photo_batch(64, names=("astronaut", "coffee", "chelsea", "rocket", "camera", "cat"))
    stats = FeatureStats()
    stats.update(ext(to_uint8(real)))
    path = ReferenceStats.from_stats(stats, protocol(64, "adm", ext), ext.describe()).save(tmp_path / "ref.npz")
    torch.manual_seed(0)
    tok = zoo.build("vqgan", TINY_CONFIG).eval()
    gen = build_generator({**TINY, "codebook_size": tok.spec.codebook_sizes[0]})
    assert balanced_labels(6, 4).tolist() == [0, 1, 2, 3, 0, 1]
    a = generation_fid(gen, tok, path, num_samples=6, batch_size=4, extractor=ext, seed=0)
    b = generation_fid(gen, tok, path, num_samples=6, batch_size=4, extractor=ext, seed=0)
    assert a["n"] == 6 and a["reference_n"] == 6 and a["gfid"] == b["gfid"] and a["gfid"] > 0
    assert a["protocol"]["labels"] == "0..3 repeated" and a["protocol"]["sampler"]["num_steps"] == 8
    other = ReferenceStats.from_stats(stats, protocol(128, "adm", ext), ext.describe()).save(tmp_path / "r128.npz")
    with pytest.raises(InputError, match="do not match this run"):
        generation_fid(gen, tok, other, num_samples=4, extractor=ext)  # statistics of 128px images


def test_grouped_ar_recipe_trains_on_photo_codes_with_g_groups(tmp_path):
    """`generator: ar` on a tokenizer with 4 sub-codes per position (the tiny UniTok fixture, UniTok's layout)."""
    from zoo.generate.train import train_generator

    fix = Path(__file__).parent / "fixtures" / "unitok"
    tok = zoo.from_official("unitok", fix / "tiny_official.safetensors", fix / "tiny_args.json", heads=4)
    zoo.save_pretrained(tok, tmp_path / "tok")
    recipe = Path(__file__).parents[1] / "recipes" / "generator" / "tiny_ar.yaml"
    result = train_generator(recipe, [f"tokenizer={tmp_path / 'tok'}", f"cache_dir={tmp_path / 'cache'}",
                                      "train.max_steps=40"], output=tmp_path / "run", log=lambda *a: None)
    assert sum(result.losses[-5:]) / 5 < 0.6 * sum(result.losses[:5]) / 5
    gen = load_generator(result.output)
    assert gen.family == "ar" and gen.code_layout() == ((64, 64, 64, 64), 16)
    codes = gen.sample([0, 3], seed=0)
    assert codes.indices.shape == (2, 16, 4) and torch.equal(codes.indices, gen.sample([0, 3], seed=0).indices)
    images = gen.generate_images(zoo.load(tmp_path / "tok"), [1], seed=0)
    assert images.shape == (1, 3, 64, 64)
    with pytest.raises(InputError, match="groups per position"):
        train_generator(recipe, [f"tokenizer={tmp_path / 'tok'}", "generator=maskgit"], log=lambda *a: None)


def test_named_var_generator_loads_an_official_training_checkpoint(tmp_path):
    """The release's file layout ({"trainer": {"var_wo_ddp", "vae_local"}, "args"}), pickled, weights-only."""
    sd = load_file(str(VAR_FIX / "tiny_var.safetensors"))
    torch.save({"epoch": 1, "trainer": {"var_wo_ddp": sd, "vae_local": {}}, "args": {"pn": "1_1_2_3_3_4_5_6"}},
               tmp_path / "ar-ckpt-last.pth")
    zoo.generate.register_generator(zoo.generate.GeneratorEntry(
        name="test-tiny-var", family="var", tokenizer="imagefolder", sampling=dict(guidance=3.25, top_k=20, top_p=0.95),
        config=dict(scales=[1, 1, 2, 3, 3, 4, 5, 6], code_dim=16, vocab=128, num_classes=10, width=64, depth=2,
                    heads=2)), overwrite=True)
    gen = load_generator("test-tiny-var", checkpoint=tmp_path / "ar-ckpt-last.pth")
    io = load_file(str(VAR_FIX / "tiny_var_io.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(gen(io["labels"], io["var_input"]), io["logits"], atol=1e-4, rtol=0)
    save_generator(gen, tmp_path / "folder")
    again = load_generator(tmp_path / "folder")
    assert again.family == "var" and again.sampling == gen.sampling and again.config == gen.config
