"""Speed against the official code, side by side in one process, with parity checked first.

    python benchmarks/vs_official.py --family onedpiece --official ~/src/One-D-Piece
    python benchmarks/vs_official.py --family titok --official ~/src/1d-tokenizer --model titok-s128
    python benchmarks/vs_official.py --family maskgit-vqgan --official ~/src/1d-tokenizer --batch-sizes 1,8
    python benchmarks/vs_official.py --family imagefolder --official ~/src/ImageFolder
    python benchmarks/vs_official.py --family alit --official ~/src/adaptive-length-tokenizer

The official repository is a checkout YOU fetched (it is never shipped with the zoo, and this script copies
nothing from it): the script puts it on ``sys.path``, builds the official model of a released config with its
own random initialisation (seeded), converts that state dict with the zoo's converter (`zoo.from_official`),
checks parity on random images (indices equal, images within 1e-4), then times encode, decode and
encode+decode of both, interleaved (zoo, official, official, zoo, ...) so that the load of a shared machine
hits both alike. Each figure is the median over `--repeats` rounds of wall time and of process CPU time; the
table prints throughput ratios zoo / official (> 1: the zoo is faster). With `--memory`, the peak resident
memory of one batch is measured for each side in its own subprocess (the highest resident memory sampled while the
batch runs, minus the memory of the built model; glibc's free heap is returned first and its mmap threshold fixed,
so the figure counts what the batch allocates, not what the process happened to free before).

The official repositories need what their requirements name (omegaconf for TiTok / One-D-Piece; install it in
a scratch environment, e.g. ``python -m venv --system-site-packages /tmp/venv && /tmp/venv/bin/pip install
omegaconf``; UniTok: typed-argument-parser, pytz, timm; ImageFolder: timm==1.0.9, ruamel.yaml, einops; ALIT:
omegaconf, einops). Families: titok and maskgit-vqgan (bytedance/1d-tokenizer), onedpiece (turingmotors/One-D-Piece),
unitok (FoundationVision/UniTok), imagefolder (lxa9867/ImageFolder, model imagefolder-4096/-8192/-16384) and alit
(ShivamDuggal4/adaptive-length-tokenizer, model alit-small or another registered alit-* name).

Two official builds need help to run on one CPU process; the checkout is never edited, the builders below do it at
run time: ImageFolder gets stand-in modules for `peft` / `webdataset` when they are not installed (imported, unused
on this path), timm's ``create_model`` forced to ``pretrained=False`` while it builds, and a one-process gloo group
(its constructor asks for the rank). ALIT gets a stand-in `pytorch_lightning` (its VQGAN only subclasses
``LightningModule``), is built from inside the checkout (it reads its YAML files by relative path), and runs under a
scoped patch of ``Tensor.get_device`` (its ``.to(x.get_device())`` means -1 on a CPU, which ``.to`` refuses), active
only during the official calls. ALIT's halting draws come from the global RNG in the release; the official side is
seeded with the zoo's default halting seed (0) before each encode, which makes the two draw the same masks.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import zoo


# ---------------------------------------------------------------------------------------------------------------
# Official models (built from the user's checkout) and how to call them
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Official:
    """An official model plus the calls that match the zoo's `encode` / `decode` on images in [0, 1]."""

    model: nn.Module
    encode: Callable[[Tensor], Tensor]  # images [B, 3, H, W] in [0, 1] -> indices, the zoo's [B, T, G] layout
    decode: Callable[[Tensor], Tensor]  # indices [B, T, G] -> raw images [B, 3, H, W]
    config: Any  # what zoo.from_official takes as the official config
    overrides: dict
    image_size: int


def _titok(official: Path, name: str, family: str) -> Official:
    from omegaconf import OmegaConf

    if family == "onedpiece":
        from modeling.one_d_piece import OneDPiece as cls
        yaml = official / "configs" / f"one-d-piece_{name.split('-')[1]}256.yaml"
    else:
        from modeling.titok import TiTok as cls
        yaml = official / "configs" / "infer" / "TiTok" / f"titok_{name.split('-', 1)[1].replace('-', '_')}.yaml"
    cfg = OmegaConf.load(yaml)
    model = cls(cfg).eval()

    def encode(x: Tensor) -> Tensor:
        return model.encode(x)[1]["min_encoding_indices"].reshape(x.shape[0], -1, 1)

    def decode(idx: Tensor) -> Tensor:
        return model.decode_tokens(idx[..., 0][:, None])

    return Official(model, encode, decode, str(yaml), {}, int(cfg.dataset.preprocessing.crop_size))


def _maskgit_vqgan(official: Path, name: str, family: str) -> Official:
    from omegaconf import OmegaConf
    from modeling.titok import PretrainedTokenizer

    from modeling.modules.maskgit_vqgan import Decoder, Encoder, VectorQuantizer

    conf = OmegaConf.create({"channel_mult": [1, 1, 2, 2, 4], "num_resolutions": 5, "dropout": 0.0,
                             "hidden_channels": 128, "num_channels": 3, "num_res_blocks": 2, "resolution": 256,
                             "z_channels": 256})
    # The official constructor reads the released file; build the same modules without that read.
    model = PretrainedTokenizer.__new__(PretrainedTokenizer)
    nn.Module.__init__(model)
    model.encoder, model.decoder = Encoder(conf), Decoder(conf)
    model.quantize = VectorQuantizer(num_embeddings=1024, embedding_dim=256, commitment_cost=0.25)
    model.eval()

    def encode(x: Tensor) -> Tensor:
        return model.encode(x).reshape(x.shape[0], -1, 1)

    def decode(idx: Tensor) -> Tensor:  # the official decode clamps; compare against the clamped zoo output
        return model.decode(idx[..., 0])

    return Official(model, encode, decode, None, {}, 256)


def _unitok(official: Path, name: str, family: str) -> Official:
    from models.unitok import UniTok
    from utils.config import Args

    args = Args()
    args.model = "vitamin_large"  # the released UniTok (Args' defaults)
    model = UniTok(args).eval()

    def encode(x: Tensor) -> Tensor:  # official [B, G, L] -> ours [B, L, G]
        return model.img_to_idx(x * 2 - 1).transpose(1, 2)

    def decode(idx: Tensor) -> Tensor:  # the official decode clamps
        return (model.idx_to_img(idx.transpose(1, 2)) + 1) / 2

    config = json.loads(json.dumps(args.state_dict(), default=str))
    return Official(model, encode, decode, config, {}, int(args.img_size))


# ---------------------------------------------------------------------------------------------------------------
# Run-time shims: what an official build needs beyond its checkout, applied here so the checkout stays unedited
# ---------------------------------------------------------------------------------------------------------------
def stub_missing_modules(stubs: dict[str, dict[str, Any]]) -> None:
    """Empty stand-in modules (with the given attributes) for packages that are not installed.

    The official files import them at module level but never use them on the inference path built here (training
    data pipelines, LoRA tuning, the Lightning base class); an installed package is left alone and used.
    """
    for name, attrs in stubs.items():
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run with `path` as the working directory (official code that opens its configs by relative path)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def one_process_group() -> Iterator[None]:
    """A one-process gloo group while an official constructor asks for its rank and world size (its training
    launcher normally provides one); torn down afterwards unless one existed before."""
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    with tempfile.TemporaryDirectory(prefix="vs_official_pg_") as tmp:
        dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


@contextlib.contextmanager
def no_pretrained_download(*modules: Any) -> Iterator[None]:
    """`create_model` of each module (timm's, as the official file imported it) forced to ``pretrained=False``:
    the benchmark compares random weights, so nothing is downloaded."""
    from unittest import mock

    with contextlib.ExitStack() as stack:
        for module in modules:
            create = module.create_model
            stack.enter_context(mock.patch.object(
                module, "create_model", lambda *a, _create=create, **kw: _create(*a, **{**kw, "pretrained": False})))
        yield


_GET_DEVICE = torch.Tensor.get_device


def _get_device_cpu_as_device(self: Tensor) -> Any:
    return self.device if self.device.type == "cpu" else _GET_DEVICE(self)


@contextlib.contextmanager
def cpu_get_device() -> Iterator[None]:
    """``Tensor.get_device()`` answering ``device('cpu')`` for CPU tensors while official code runs.

    ALIT moves tensors with ``.to(x.get_device())``; on a CPU ``get_device()`` is -1, which ``.to`` refuses (the
    release only ran on GPUs). Scoped to the official calls, so the zoo side never runs under it.
    """
    own = torch.Tensor.__dict__.get("get_device")  # None: inherited from the C base class (the usual case)
    torch.Tensor.get_device = _get_device_cpu_as_device
    try:
        yield
    finally:
        if own is None:
            del torch.Tensor.get_device
        else:
            torch.Tensor.get_device = own


def _imagefolder(official: Path, name: str, family: str) -> Official:
    import ruamel.yaml

    # dino_enc/dinov2.py imports peft (LoRA tuning, unused with the released tuning_method="full") and
    # datasets/build.py imports webdataset (training shards); neither runs on this path
    stub_missing_modules({"peft": {}, "webdataset": {}})
    with warnings.catch_warnings():  # the release re-registers timm's ViT names with its own ViT class, as intended
        warnings.filterwarnings("ignore", message="Overwriting .* in registry")
        from tokenizer.tokenizer_image import xqgan_model
        from tokenizer.tokenizer_image.dino_enc import dinov2

    yaml = official / "configs" / f"MSVR10P2-{name.rsplit('-', 1)[1]}.yaml"
    with open(yaml, encoding="utf-8") as fh:
        cfg = ruamel.yaml.YAML().load(fh)  # the training script's reader
    known = {f.name for f in fields(xqgan_model.ModelArgs)}
    # xqgan_train.py main() passes its argparse values; the released YAMLs leave detail_guide unset, and its argparse
    # default "none" (not ModelArgs' "clip") is what the releases were built with: no CLIP teacher in their files
    kwargs = {"detail_guide": "none", **{k: v for k, v in cfg.items() if k in known}}
    with one_process_group(), no_pretrained_download(xqgan_model, dinov2):
        model = xqgan_model.VQ_models[cfg.get("vq_model", "VQ-16")](**kwargs).eval()
    side = int(model.v_patch_nums[-1])

    def encode(x: Tensor) -> Tensor:  # VAR's img_to_idxBl, per branch: indices [B, 286] -> ours [B, 286, G]
        f = model.encode(x * 2 - 1)  # [B, C, G·s², 1]
        parts = [p.reshape(x.shape[0], -1, side, side) for p in f.chunk(model.product_quant, dim=2)]
        return torch.stack([torch.cat(q.f_to_idxBl_or_fhat(p, to_fhat=False, v_patch_nums=model.v_patch_nums), 1)
                            for q, p in zip(model.quantizes, parts)], dim=-1)

    def decode(idx: Tensor) -> Tensor:  # VAR's idxBl_to_img per branch (embed_to_fhat), then the raw decoder
        B, f_hats = idx.shape[0], []
        for g, q in enumerate(model.quantizes):
            maps, start = [], 0
            for pn in model.v_patch_nums:
                maps.append(q.embedding(idx[:, start:start + pn * pn, g]).transpose(1, 2).reshape(B, q.Cvae, pn, pn))
                start += pn * pn
            f_hats.append(q.embed_to_fhat(maps, all_to_max_scale=True, last_one=True))
        return (model.decode(torch.cat(f_hats, dim=1)) + 1) / 2

    return Official(model, encode, decode, str(yaml), {}, int(cfg["image_size"]))


def _alit(official: Path, name: str, family: str) -> Official:
    # base_tokenizers/taming/models/vqgan.py subclasses pytorch_lightning.LightningModule and uses nothing of it;
    # the package `taming` is imported top-level from base_tokenizers/ (the release appends that relative path)
    stub_missing_modules({"pytorch_lightning": {"LightningModule": nn.Module}})
    sys.path.insert(0, str(official / "base_tokenizers"))
    size = "alit_" + name.split("-")[1]  # alit-small(-in100) -> alit_small, alit-base-in100 -> alit_base, ...
    with working_directory(official):  # the release reads its YAML files by relative path, at import and build
        import adaptive_tokenizers
        from omegaconf import OmegaConf

        # as evaluate_rfid.py builds it, but with no base checkpoint read (random init), and in the first training
        # stage so that the eight LPIPS + PatchGAN losses of "full_finetuning" (pretrained VGG downloads, training
        # only, not converted) are not built; then the released (stage-2) decoding from the soft code is switched on
        model = getattr(adaptive_tokenizers, size)(
            base_tokenizer_args={"id": "vqgan", "pretrained_ckpt_path": None, "is_requires_grad": False},
            quantize_latent=True, train_stage="latent_distillation_pretrain").eval()
        yaml = OmegaConf.to_container(OmegaConf.load("adaptive_tokenizers/configs/adaptive_vqgan.yaml"))
    model.train_stage = "full_finetuning"
    config = {**yaml, "model": size, "base_tokenizer": "vqgan", "quantize_latent": True,
              "input_size": yaml["img_size"]}
    last: dict[str, Tensor] = {}  # the forward returns no indices: keep those of the last quantizer call

    def keep_indices(module: nn.Module, args: Any, out: Any) -> None:
        last["indices"] = out[1]["min_encoding_indices"]

    model.quantize.register_forward_hook(keep_indices)
    from zoo.families.alit import ALITConfig

    seed = ALITConfig.seed  # the zoo's default encode draws the halting masks from a CPU generator with this seed

    def encode(x: Tensor) -> Tensor:  # all rollouts (the release's eval forward), the last one's tokens
        torch.manual_seed(seed)  # the release draws the halting masks from the global RNG
        with cpu_get_device():
            model(x)
        return last["indices"][..., None]

    def decode(idx: Tensor) -> Tensor:  # the release's per-rollout decode (forward), from the stored indices
        q = model.quantize
        z_q = q.get_codebook_entry(idx[..., 0].reshape(-1)).view(idx.shape[0], idx.shape[1], -1)
        if q.use_l2_norm:
            z_q = F.normalize(z_q, dim=-1)
        grid = model.decoder_positional_embedding.shape[0] - 1
        with cpu_get_device():  # preprocess_decoder reads only the batch, length and dtype of the image tokens
            masked = model.preprocess_decoder(z_q.new_empty(idx.shape[0], grid, 1))
            logits = model.decoder(z_q, masked)
            code = torch.einsum("nlc,cd->nld", logits.softmax(dim=-1),
                                model.base_tokenizer.vqgan.quantize.embedding.weight.data)
            return model.reconstruct_images(logits, code)

    return Official(model, encode, decode, config, {}, int(yaml["img_size"]))


BUILDERS: dict[str, tuple[Callable[[Path, str, str], Official], str, str]] = {
    # family: (builder, zoo family, default model)
    "titok": (_titok, "titok", "titok-s128"),
    "onedpiece": (_titok, "onedpiece", "onedpiece-s-256"),
    "maskgit-vqgan": (_maskgit_vqgan, "vqgan", "maskgit-vqgan"),
    "unitok": (_unitok, "unitok", "unitok"),
    "imagefolder": (_imagefolder, "imagefolder", "imagefolder-4096"),
    "alit": (_alit, "alit", "alit-small"),
}
CLAMPED_OFFICIAL = {"maskgit-vqgan", "unitok"}  # official decodes clamp to [0, 1]


def build_official(family: str, official: Path, name: str, seed: int) -> Official:
    sys.path.insert(0, str(official))
    torch.manual_seed(seed)
    return BUILDERS[family][0](official, name, family)


def build_zoo(family: str, name: str, state_dict: dict, off: Official, compile: bool, channels_last: bool):
    zoo_family = BUILDERS[family][1]
    if off.config is None:
        tok = zoo.load(name, checkpoint=_save(state_dict))
    else:
        tok = zoo.from_official(zoo_family, state_dict, off.config, **off.overrides)
    tok = tok.eval()
    if channels_last:
        tok.to_channels_last()
    if compile:
        tok.compile()
    return tok


def _save(state_dict: dict) -> str:
    from safetensors.torch import save_file

    path = os.path.join(tempfile.mkdtemp(prefix="vs_official_"), "official.safetensors")
    save_file({k: v.contiguous() for k, v in state_dict.items()}, path)
    return path


# ---------------------------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------------------------
def parity(tok, off: Official, images: Tensor, clamp: bool) -> dict:
    with torch.no_grad():
        ours = tok.encode(images)
        theirs = off.encode(images)
        same = bool(torch.equal(ours.indices.cpu(), theirs.cpu()))
        a = tok.decode(ours, clamp=clamp)
        b = off.decode(theirs)
    return {"indices_equal": same, "index_agreement": float((ours.indices.cpu() == theirs.cpu()).float().mean()),
            "max_abs_image_diff": float((a - b).abs().max())}


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def interleaved(tok, off: Official, images: Tensor, repeats: int, clamp: bool) -> dict:
    """Median seconds (wall, CPU) of encode / decode / encode+decode for both, alternating ABBA per round."""
    with torch.no_grad():
        codes, idx = tok.encode(images), off.encode(images)
        calls = {
            "zoo": {"encode": lambda: tok.encode(images), "decode": lambda: tok.decode(codes, clamp=clamp),
                    "encode+decode": lambda: tok.decode(tok.encode(images), clamp=clamp)},
            "official": {"encode": lambda: off.encode(images), "decode": lambda: off.decode(idx),
                         "encode+decode": lambda: off.decode(off.encode(images))},
        }
        for side in calls.values():  # warm-up (and compilation)
            for fn in side.values():
                fn()
        samples = {s: {k: [] for k in calls[s]} for s in calls}
        for r in range(repeats):
            order = ("zoo", "official") if r % 2 == 0 else ("official", "zoo")
            for op in ("encode", "decode", "encode+decode"):
                for side in order:
                    samples[side][op].append(timed(calls[side][op]))
    return {s: {op: (statistics.median(t[0] for t in v), statistics.median(t[1] for t in v))
                for op, v in ops.items()} for s, ops in samples.items()}


# glibc serves blocks above a threshold with their own mmap (returned to the OS when freed) and below it from the
# heap, whose freed pages stay resident; by default the threshold rises with every large block freed, so how much
# of a batch reuses resident heap depends on what the process did before (the same side measured 248 or 360 MiB
# in two processes). A fixed threshold makes every tensor above 64 KiB its own mapping: RSS then follows the live
# tensors, and the figure repeats within 1-2 MiB from run to run.
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def peak_memory(args: argparse.Namespace, side: str, batch: int, state_file: str) -> float:
    """MiB of RSS growth while one batch is encoded and decoded, measured in a fresh subprocess."""
    cmd = [sys.executable, __file__, "--family", args.family, "--official", str(args.official), "--model",
           args.model, "--threads", str(args.threads), "--seed", str(args.seed),
           "--_memory", json.dumps({"side": side, "batch": batch, "state": state_file})]
    if args.compile:
        cmd.append("--compile")
    if args.channels_last:
        cmd.append("--channels-last")
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **STEADY_MALLOC})
    if out.returncode:
        raise RuntimeError(f"memory subprocess ({side}) failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def memory_child(args: argparse.Namespace, spec: dict) -> None:
    from safetensors.torch import load_file

    off = build_official(args.family, args.official, args.model, args.seed)
    state = load_file(spec["state"])
    images = torch.rand(spec["batch"], 3, off.image_size, off.image_size, generator=torch.Generator().manual_seed(1))
    if spec["side"] == "zoo":
        tok = build_zoo(args.family, args.model, state, off, args.compile, args.channels_last)
        del off
        tok.fingerprint  # computed once per model (then cached): not part of a batch's memory
        run = lambda: tok.decode(tok.encode(images), clamp=args.family in CLAMPED_OFFICIAL)  # noqa: E731
    else:
        off.model.load_state_dict(state)
        run = lambda: off.decode(off.encode(images))  # noqa: E731
    import gc

    gc.collect()
    print(peak_rss_growth(run))


def _rss_mib() -> float:
    """Current resident memory of this process (Linux /proc; else the peak so far, from getrusage)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc `malloc_trim`), so that RSS counts only live memory.
    Without it, memory freed while the models were built stays resident and a batch that reuses it shows no
    growth at all (UniTok's zoo side once measured 6 MiB for a batch that needs hundreds)."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def peak_rss_growth(run: Callable[[], Any], every: float = 0.002) -> float:
    """MiB: the highest resident memory seen while `run()` runs (sampled by a thread) minus the memory before.
    (The process's peak RSS cannot be used: building the models already set it higher than one batch needs.)"""
    import threading

    _release_free_heap()
    before, peak, done = _rss_mib(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(every)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        with torch.no_grad():
            run()
    finally:
        done.set()
        watcher.join()
    return max(peak[0], _rss_mib()) - before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--family", required=True, choices=sorted(BUILDERS))
    p.add_argument("--official", required=True, type=Path, help="your checkout of the official repository")
    p.add_argument("--model", help="released config to build (default: the family's smallest)")
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (0: parity and --memory only)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="time the zoo model compiled (Tokenizer.compile())")
    p.add_argument("--channels-last", action="store_true", help="time the zoo model channels-last")
    p.add_argument("--memory", action="store_true", help="also measure peak memory per side (subprocesses)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--_memory", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.model = args.model or BUILDERS[args.family][2]
    args.official = args.official.expanduser().resolve()
    torch.set_num_threads(args.threads)
    if args._memory:
        return memory_child(args, json.loads(args._memory))

    off = build_official(args.family, args.official, args.model, args.seed)
    state = {k: v.detach().clone() for k, v in off.model.state_dict().items()}
    tok = build_zoo(args.family, args.model, state, off, args.compile, args.channels_last)
    clamp = args.family in CLAMPED_OFFICIAL
    gen = torch.Generator().manual_seed(args.seed + 1)
    size = off.image_size
    check = parity(tok, off, torch.rand(2, 3, size, size, generator=gen), clamp)
    print(f"{args.model}: parity {check}", flush=True)
    if not check["indices_equal"] or check["max_abs_image_diff"] > 1e-4:
        print("warning: parity not exact (near ties in a random-weight model, or a real difference)", file=sys.stderr)
    results: dict[str, Any] = {"model": args.model, "family": args.family, "threads": args.threads,
                               "compile": args.compile, "channels_last": args.channels_last, "parity": check,
                               "batches": {}}
    print(f"{'batch':>5} {'op':<14} {'zoo s':>8} {'official s':>11} {'wall ratio':>10} {'cpu ratio':>9}")
    for batch in (int(b) for b in args.batch_sizes.split(",") if args.repeats > 0):
        images = torch.rand(batch, 3, size, size, generator=gen)
        t = interleaved(tok, off, images, args.repeats, clamp)
        results["batches"][batch] = t
        for op in ("encode", "decode", "encode+decode"):
            (zw, zc), (ow, oc) = t["zoo"][op], t["official"][op]
            print(f"{batch:>5} {op:<14} {zw:8.3f} {ow:11.3f} {ow / zw:10.2f} {oc / zc:9.2f}", flush=True)
    if args.memory:
        state_file = _save(state)
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            mem = {side: peak_memory(args, side, batch, state_file) for side in ("zoo", "official")}
            results.setdefault("peak_MiB", {})[batch] = mem
            print(f"peak memory b={batch}: zoo {mem['zoo']:.0f} MiB, official {mem['official']:.0f} MiB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
