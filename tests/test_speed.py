"""The speed paths change nothing: `Tokenizer.compile()` and `to_channels_last()` give the eager model's indices
exactly and its images within 1e-4 (a continuous model's latents within 1e-4), on the tiny parity-fixture model of
every family (random weights from the tiny recipe for the families that have one); the hot path compiles
without graph breaks; `--compile` / `--channels-last` work on the CLI and in `zoo eval`; the CLI reads images
ahead of the model in order."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import zoo
from conftest import photo_batch

F = Path(__file__).parent / "fixtures"


def tiny(family: str) -> zoo.Tokenizer:
    """The tiny model of each family (official-layout fixtures where there are some, else the family's TINY)."""
    if family in ("vqgan", "convfsq", "diffusers_vae"):
        import importlib

        torch.manual_seed(0)
        config = importlib.import_module(f"zoo.families.{family}").TINY_CONFIG
        return zoo.build(family.replace("_vae", ""), config).eval()
    if family in RECIPE_TINY:
        import yaml

        torch.manual_seed(0)
        recipe = Path(__file__).resolve().parents[1] / "recipes" / family / "tiny.yaml"
        return zoo.build(family, yaml.safe_load(recipe.read_text())["model"]).eval()
    d = F / family
    if family in ("titok", "onedpiece"):
        return zoo.from_official(family, d / "tiny_official.safetensors", next(d.glob("tiny_config.*")), heads=4)
    if family == "alit":
        return zoo.from_official(family, d / "tiny_official.safetensors", d / "tiny_config.yaml", heads=4)
    if family == "imagefolder":
        return zoo.from_official(family, d / "tiny_official.safetensors", d / "tiny_config.yaml", encoder_heads=4,
                                 decoder_heads=2)
    return zoo.from_official("unitok", d / "tiny_official.safetensors", d / "tiny_args.json", heads=4)


RECIPE_TINY = ("llamagen", "var-vqvae", "open_magvit2", "ibq", "tokenflow")  # random weights, their tiny recipes
FAMILIES = ("vqgan", "convfsq", "titok", "onedpiece", "alit", "imagefolder", "unitok", "diffusers_vae", *RECIPE_TINY)


def same_outputs(tok: zoo.Tokenizer, images: torch.Tensor, change) -> None:
    codes = tok.encode(images)
    decoded = tok.decode(codes, clamp=False)
    fingerprint = tok.fingerprint
    change(tok)
    codes2 = tok.encode(images)
    if isinstance(codes, zoo.Latents):  # continuous: latents within float noise (no index to hold exactly)
        torch.testing.assert_close(codes2.values, codes.values, atol=1e-4, rtol=0)
    else:
        assert torch.equal(codes2.indices, codes.indices)
        assert torch.equal(codes2.token_counts(), codes.token_counts())
    assert tok.fingerprint == fingerprint == codes2.fingerprint  # codes stay interchangeable
    torch.testing.assert_close(tok.decode(codes2, clamp=False), decoded, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_channels_last_and_compiled_graph_give_the_same_codes_and_images(family):
    """channels-last, then compiled on top (backend 'eager': dynamo's graph capture without inductor's C++
    build, which is the slow part on a CPU): same indices, images within 1e-4, and no graph break anywhere on the
    hot path (a break would split the compiled graph and fall back to Python)."""
    from torch._dynamo.utils import counters

    tok = tiny(family)
    size = tok.spec.image_size
    images = photo_batch(size)
    same_outputs(tok, images, lambda t: t.to_channels_last())
    conv = next((p for p in tok.parameters() if p.dim() == 4), None)
    assert conv is None or conv.is_contiguous(memory_format=torch.channels_last)

    torch._dynamo.reset()
    counters.clear()
    same_outputs(tok, images, lambda t: t.compile(backend="eager"))
    assert dict(counters["graph_break"]) == {}
    assert counters["stats"]["unique_graphs"] >= 2  # encode and decode ran compiled graphs
    assert all(m._compiled_call_impl is not None for m in tok.hot_modules().values())


def test_inductor_compiled_model_matches_eager():
    """The real thing once: inductor (C++ on a CPU) on the smallest conv model, codes identical, images within 1e-4,
    compiled in place (the state dict, hence folders and fingerprints, unchanged)."""
    tok = tiny("convfsq")
    tok.compile_modules = ("decoder",)  # one module: inductor builds C++ per kernel, slow on a loaded CPU
    keys = list(tok.state_dict())
    same_outputs(tok, photo_batch(64)[:1], lambda t: t.compile())
    assert list(tok.state_dict()) == keys


def test_default_hot_modules_skip_codebooks():
    tok = tiny("titok")
    assert list(tok.hot_modules()) == ["encoder", "decoder", "pixel_decoder"]
    assert "encoder.transformer" in tiny("alit").hot_modules()  # ALIT's rollouts call the transformer directly


def test_cli_compile_and_channels_last(model_dir, tmp_path, capsys):
    from PIL import Image

    from zoo.cli import main

    img = tmp_path / "in"
    img.mkdir()
    for i, photo in enumerate(photo_batch(64)):
        Image.fromarray((photo.permute(1, 2, 0) * 255).round().byte().numpy()).save(img / f"{i}.png")
    plain, fast = tmp_path / "plain.safetensors", tmp_path / "fast.safetensors"
    assert main(["encode", str(img), "-m", str(model_dir), "-o", str(plain), "-q", "--device", "cpu"]) == 0
    assert main(["encode", str(img), "-m", str(model_dir), "-o", str(fast), "-q", "--device", "cpu",
                 "--compile", "eager", "--channels-last", "--batch-size", "1"]) == 0
    assert torch.equal(zoo.Codes.load(plain).indices, zoo.Codes.load(fast).indices)
    out = tmp_path / "rec"
    assert main(["reconstruct", str(img), "-m", str(model_dir), "-o", str(out), "-q", "--device", "cpu",
                 "--compile", "eager"]) == 0
    assert len(list(out.glob("*.png"))) == 3  # two reconstructions and the grid
    assert main(["decode", str(fast), "-m", str(model_dir), "-o", str(tmp_path / "dec"), "-q", "--device", "cpu", "--channels-last",
                 "--compile", "eager"]) == 0
    assert len(list((tmp_path / "dec").glob("*.png"))) == 2
    rc = main(["eval", "-m", str(model_dir), "--data", str(img), "--metrics", "psnr", "-o", str(tmp_path / "rep"),
               "-q", "--device", "cpu", "--compile", "eager", "--channels-last", "--workers", "1"])
    assert rc == 0, capsys.readouterr().err
    assert main(["eval", "-m", str(model_dir), "--data", str(img), "--metrics", "psnr", "-q", "--workers", "-1",
                 "-o", str(tmp_path / "rep2")]) == 2


def test_read_ahead_reads_the_next_items_while_the_caller_works_and_keeps_order():
    import threading

    from zoo.read_ahead import read_ahead, read_each_ahead

    asked_for_two = threading.Event()

    def read(i: int) -> int:
        if i == 2:
            asked_for_two.set()
        return i * i

    seen = []
    for value in read_each_ahead(read, range(6), ahead=2):
        seen.append(value)
        if value == 0:
            # the caller is busy with item 0: the reader goes on to items 1 and 2 meanwhile
            assert asked_for_two.wait(timeout=30)
    assert seen == [i * i for i in range(6)]

    def broken(i: int) -> int:
        if i == 2:
            raise OSError("unreadable")
        return i

    got = []
    with pytest.raises(OSError, match="unreadable"):  # raised at the item where it happened, with its own type
        for value in read_each_ahead(broken, range(5)):
            got.append(value)
    assert got == [0, 1]

    pulled = []

    def endless():
        i = 0
        while True:
            pulled.append(i)
            yield i
            i += 1

    def readers() -> int:
        return sum(t.name == "zoo-read-ahead" for t in threading.enumerate())

    before = readers()
    items = read_ahead(endless(), ahead=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    assert readers() == before + 1
    items.close()  # the caller stops early: the reader stops too (joined), within `ahead` items
    assert readers() == before
    assert len(pulled) <= 3 + 2 + 1
    with pytest.raises(ValueError, match="ahead"):
        next(read_ahead([1], ahead=0))


def test_channels_last_model_saves_and_reloads(tmp_path):
    """A channels-last model writes an ordinary folder (safetensors takes its weights) that loads to the same model."""
    tok = tiny("vqgan").to_channels_last()
    tok.save_pretrained(tmp_path / "m")
    again = zoo.load(tmp_path / "m")
    images = photo_batch(64)
    assert again.fingerprint == tok.fingerprint
    assert torch.equal(again.encode(images).indices, tok.encode(images).indices)


# ---- generators: `Generator.compile()` samples the same codes ----
def tiny_generator(kind: str):
    """(generator, sampling keywords): MaskGIT (BERT and UViT), VAR on the tiny official fixtures of
    tests/fixtures/var (attached to the tiny ImageFolder tokenizer it was made with), a grouped AR generator."""
    from safetensors.torch import load_file

    from zoo.generate import build_generator
    from zoo.generate.ar import ARConfig, ARGenerator

    torch.manual_seed(0)
    small = dict(codebook_size=64, seq_len=16, num_classes=4, width=32, depth=2, heads=4, mlp_dim=64)
    if kind in ("maskgit-bert", "maskgit-uvit"):
        config = {**small, "arch": kind.split("-")[1]}
        return build_generator(config, dict(num_steps=4, temperature=2.0, guidance=2.0)).eval(), {}
    if kind == "ar":
        config = ARConfig(codebook_sizes=(32, 16), seq_len=12, num_classes=4, width=32, depth=2, heads=4)
        return ARGenerator(config).eval(), dict(guidance=2.0, top_k=8)
    io = load_file(str(F / "var" / "tiny_var_io.safetensors"))
    gen = zoo.from_official("var", load_file(str(F / "var" / "tiny_var.safetensors")), config={"pn": "1_1_2_3_3_4_5_6"})
    tok = zoo.from_official("imagefolder", F / "imagefolder" / "tiny_official.safetensors",
                            F / "imagefolder" / "tiny_config.yaml", encoder_heads=4, decoder_heads=2)
    gen.attach(tok)
    return gen.eval(), dict(guidance=float(io["sample_cfg"]), top_k=int(io["sample_top_k"]),
                            top_p=float(io["sample_top_p"]))


@pytest.mark.parametrize("kind", ["maskgit-bert", "maskgit-uvit", "var", "ar"])
def test_compiled_generator_samples_the_same_codes(kind):
    """Dynamo's graph capture (backend 'eager') of each generator's hot modules: the codes of eager sampling for
    the same seed, no graph break, and one graph per kind of call (the KV-cached samplers compile their blocks with
    dynamic shapes, so a growing sequence does not recompile at every step)."""
    from torch._dynamo.utils import counters

    gen, kw = tiny_generator(kind)
    labels = [0, 3, 1]
    eager = gen.sample(labels, seed=5, **kw).indices
    keys = list(gen.state_dict())
    torch._dynamo.reset()
    counters.clear()
    assert gen.compile(backend="eager") is gen
    assert torch.equal(gen.sample(labels, seed=5, **kw).indices, eager)
    graphs = counters["stats"]["unique_graphs"]
    assert dict(counters["graph_break"]) == {} and 1 <= graphs <= 3
    assert torch.equal(gen.sample(labels, seed=6, **kw).indices, gen.sample(labels, seed=6, **kw).indices)
    assert counters["stats"]["unique_graphs"] == graphs  # a second sampling reuses the graphs
    assert list(gen.state_dict()) == keys
    assert all(m._compiled_call_impl is not None for m in gen.hot_modules().values())
