"""The `zoo` command: list | info | reconstruct | encode | decode (other packages add their own subcommands).

Every expected failure (a `ZooError`, a bad option value, an unwritable output, a file system error) exits with
code 2 and one line on stderr; an unexpected one exits 1 with one line and a hint to rerun with ``--debug``
(anywhere on the command line, or ``ZOO_DEBUG=1``), which shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import InputError, ZooError
from .outputs import output_dir, output_file, positive_int, renamed_note, unique_stems

# Packages that add subcommands: each module has `add_commands(subparsers)`.
EXTENSIONS: tuple[str, ...] = ("zoo.train.cli", "zoo.hub_cli", "zoo.generate.cli", "zoo.eval.cli")


def _device(name: str | None) -> str:
    """--device: auto, cpu, cuda, cuda:N or mps, checked against this machine; `InputError` otherwise."""
    import torch

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"--device {name!r} is not a device: use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cpu":
        return name
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {name}: no CUDA device is available here (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return name
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError(f"--device {name}: MPS is not available here (use --device cpu)")
        return name
    raise InputError(f"--device {name!r}: the zoo runs on cpu, cuda, cuda:N or mps")


def _load(args: argparse.Namespace):
    from .loading import load

    checkpoint = getattr(args, "checkpoint", None)
    if args.model is None:  # -m not given: the command's default model
        if checkpoint:
            raise InputError("--checkpoint needs -m NAME: the registered model whose official checkpoint it is")
        args.model = args.default_model
    tok = load(args.model, checkpoint=checkpoint, device=_device(args.device))
    return speed_options(tok, args)


def speed_options(tok, args: argparse.Namespace):
    """--channels-last and --compile (same codes and images within float rounding; see Tokenizer.compile), and
    --precision / --precision-encode (Tokenizer.set_precision)."""
    precision, encode = getattr(args, "precision", None) or "fp32", getattr(args, "precision_encode", False)
    if encode and precision == "fp32":
        raise InputError("--precision-encode needs --precision bf16 or fp16: the precision to encode in")
    if precision != "fp32":
        tok.set_precision(precision, encode=encode)
    if getattr(args, "channels_last", False):
        tok.to_channels_last()
    if getattr(args, "compile", None):
        tok.compile(backend=args.compile)
    return tok


def add_speed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile", nargs="?", const="inductor", metavar="BACKEND",
                   help="torch.compile the model (backend inductor unless named; the first batch of each shape "
                        "compiles, which pays off over many images)")
    p.add_argument("--channels-last", action="store_true", help="convolutions in channels-last memory layout")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="decode under autocast in this precision (default fp32); the codes stay the fp32 model's")
    p.add_argument("--precision-encode", action="store_true",
                   help="encode under --precision too (faster on a GPU; a share of the codes can differ from fp32)")


def add_workers_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=None,
                   help="processes reading and cropping images while the model runs (default: min(8, CPUs/2) on a "
                        "GPU, with pinned memory; 0 on a CPU, where the model needs the cores and a thread reads "
                        "ahead instead)")


def _progress(iterable, total: int, desc: str, enabled: bool = True):
    from .progress import progress

    return progress(iterable, total=total, desc=desc, unit="batch", quiet=not enabled)


def _batches(items: Sequence[Any], size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def reading_workers(requested: int | None, device: str) -> int:
    """Image-reading processes: as asked, else some on a GPU (reading overlaps the model) and none on a CPU."""
    if requested is not None:
        if requested < 0:
            raise InputError(f"--workers must be 0 or more, got {requested}")
        return requested
    return min(8, (os.cpu_count() or 2) // 2) if device.startswith("cuda") else 0


class _ChunkImages:
    """A map-style dataset: item i is chunk i read as one float batch, or the error that reading it raised (so a
    worker process's error reaches the command as itself, not wrapped in the DataLoader's traceback)."""

    def __init__(self, chunks: list[list[Path]], size: int, crop: str) -> None:
        self.chunks, self.size, self.crop = chunks, size, crop

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int):
        from .images import load_images

        try:
            return load_images(self.chunks[i], size=self.size, crop=self.crop)
        except Exception as exc:  # noqa: BLE001 - raised again, as itself, by the command's loop
            return exc


def _image_batches(files: Sequence[Path], size: int, args: argparse.Namespace, desc: str, device: str):
    """(file chunk, float [b, 3, size, size] batch) pairs in the files' order, read with the crop protocol while
    the model runs (`--workers` processes, pinned on a GPU; else a background thread), with a progress bar."""
    from .read_ahead import read_each_ahead

    chunks = list(_batches(files, args.batch_size))
    dataset = _ChunkImages(chunks, size, args.crop)
    workers = reading_workers(args.workers, device)
    if workers:
        from torch.utils.data import DataLoader

        batches = DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=device.startswith("cuda"))
    else:
        batches = read_each_ahead(dataset.__getitem__, range(len(chunks)))
    for chunk, images in _progress(zip(chunks, batches), len(chunks), desc, not args.quiet):
        if isinstance(images, BaseException):
            raise images
        yield chunk, images


def _parse_tokens(text: str | None) -> list[int | str] | None:
    if text is None:
        return None
    out: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if part == "auto":
            out.append(part)
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise InputError(f"--tokens takes integers separated by commas (or 'auto'), got {part!r}") from None
    return out


# -------------------------------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from .registry import get_entry, list_models

    names = list_models(args.pattern, args.family)
    if not names and (args.pattern or args.family):
        what = " and ".join(x for x in (args.pattern and f"pattern {args.pattern!r}",
                                         args.family and f"family {args.family!r}") if x)
        raise InputError(f"no registered model matches {what}; `zoo list` shows all {len(list_models())} "
                         "(patterns are shell-style: 'onedpiece-*')")
    if args.json:
        print(json.dumps([_entry_summary(get_entry(n)) for n in names], indent=2))
        return 0
    width = max((len(n) for n in names), default=10)
    for n in names:
        e = get_entry(n)
        metric = ", ".join(f"{m.name} {m.value:g}" for m in e.metrics[:2])
        print(f"{n:<{width}}  {e.family:<12} {metric:<22} {e.description[:70]}")
    return 0


def _entry_summary(e) -> dict[str, Any]:
    return {"name": e.name, "family": e.family, "description": e.description, "hub_repo": e.hub_repo,
            "hub_file": e.hub_file, "url": e.url,
            "metrics": [m.__dict__ for m in e.metrics], "license": e.license, "paper": e.paper}


def cmd_info(args: argparse.Namespace) -> int:
    from .config import config_from_dict, config_to_dict
    from .registry import get_entry, get_family

    if Path(args.model).is_dir():
        return _info_folder(Path(args.model), args.json)
    e = get_entry(args.model)
    fam = get_family(e.family)
    config = config_from_dict(fam.config_cls, dict(e.config))
    with __import__("torch").device("meta"):
        model = fam.tokenizer_cls(config)
    n_params = sum(p.numel() for p in model.parameters())
    info = {**_entry_summary(e), "official_code": fam.official_repo, "config": config_to_dict(config),
            "parameters": n_params, "spec": model.spec.as_dict(), "citation": e.citation}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{e.name}  (family {e.family}: {fam.description})")
    print(f"  {e.description}")
    where = f"hf://{e.hub_repo}/{e.hub_file}" if e.hub_repo else (e.url or "packaged with zoo")
    print(f"  weights:     {where}")
    print(f"  parameters:  {n_params:,}")
    _print_spec(model.spec.as_dict())
    for m in e.metrics:
        print(f"  {m.name}: {m.value:g} on {m.dataset}" + (f" [{m.protocol}]" if m.protocol else "")
              + (f" ({m.source})" if m.source else ""))
    try:  # the model card's view (hub metadata, layout, recipe); never fatal for `info`
        from .cards import info_lines

        for line in info_lines(e.name):
            print(line)
    except ZooError:
        pass
    print(f"  license:     {e.license or 'unknown'}   paper: {e.paper}")
    print(f"  config:      {json.dumps(config_to_dict(config))}")
    return 0


def _info_folder(directory: Path, as_json: bool) -> int:
    """`zoo info FOLDER`: a saved model's family, config, size and token layout (read from config.json; the
    weights are not loaded)."""
    import torch

    from .config import config_from_dict, config_to_dict
    from .loading import read_folder_config
    from .registry import get_family

    meta = read_folder_config(directory)
    fam = get_family(meta["family"])
    config = config_from_dict(fam.config_cls, meta["config"], where=f"{directory}/config.json")
    with torch.device("meta"):
        model = fam.tokenizer_cls(config)
    n_params = sum(p.numel() for p in model.parameters())
    spec = model.spec.as_dict()
    info = {"folder": str(directory), "name": meta.get("name"), "family": meta["family"],
            "zoo_version": meta.get("zoo_version"), "source": meta.get("source"), "parameters": n_params,
            "spec": spec, "config": config_to_dict(config)}
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{directory}  (family {meta['family']}: {fam.description}; saved by zoo {meta.get('zoo_version')})")
    if meta.get("name"):
        print(f"  name:        {meta['name']}")
    print(f"  parameters:  {n_params:,}")
    _print_spec(spec)
    print(f"  config:      {json.dumps(config_to_dict(config))}")
    return 0


def _print_spec(spec: dict[str, Any]) -> None:
    tokens = spec["max_tokens"] if spec["min_tokens"] == spec["max_tokens"] else f"{spec['min_tokens']}..{spec['max_tokens']}"
    print(f"  input:       {spec['image_size']}x{spec['image_size']} RGB in [0, 1]")
    print(f"  tokens:      {tokens} ({spec['token_layout']}), {spec['groups']} group(s), codebooks "
          f"{spec['codebook_sizes']}, {spec['bits_per_token']} bits/token, "
          f"{spec['bytes_per_image_at_max']:g} bytes/image at most")


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import torch

    from .images import list_image_files, make_grid, psnr, save_image

    files = list_image_files(args.images)
    budgets = _parse_tokens(args.tokens) or [None]
    out = output_dir(args.output)
    names = dict(zip(files, unique_stems(files, reserved={"grid"})))
    tok = _load(args)
    spec = tok.spec
    grid_rows: list[list[torch.Tensor]] = [[] for _ in range(len(budgets) + 1)]  # originals, then one per budget
    scores: list[float] = []
    for chunk, images in _image_batches(files, spec.image_size, args, "reconstruct", str(tok.device)):
        grid_rows[0].append(images)
        for row, k in enumerate(budgets, start=1):
            recon = tok.reconstruct(images.to(tok.device, non_blocking=True), num_tokens=k).cpu()
            grid_rows[row].append(recon)
            suffix = "" if k is None else f"_k{k}"
            for f, img in zip(chunk, recon):
                save_image(img, out / f"{names[f]}{suffix}.png")
            if k == budgets[-1]:
                scores.extend(psnr(recon, images).tolist())
    grid_path = save_image(make_grid([torch.cat(r) for r in grid_rows]), out / "grid.png")
    labels = ["original"] + [("reconstruction" if k is None else f"{k} tokens") for k in budgets]
    written = len(files) * len(budgets)
    print(f"wrote {written} reconstruction{'' if written == 1 else 's'} and {grid_path} (rows: {' | '.join(labels)})"
          + renamed_note(files, [names[f] for f in files]))
    print(f"PSNR (uint8, last budget): mean {sum(scores) / len(scores):.2f} dB over {len(scores)} image(s)")
    return 0


def cmd_encode(args: argparse.Namespace) -> int:
    from .api import Codes
    from .atomic import atomic_write_text
    from .images import list_image_files

    files = list_image_files(args.images)
    budget = _parse_tokens(args.tokens)
    if budget and len(budget) != 1:
        raise InputError("zoo encode takes one --tokens value")
    if args.precision != "fp32" and not args.precision_encode:
        raise InputError(f"zoo encode only encodes, and --precision {args.precision} alone changes decoding: add "
                         "--precision-encode to encode in it (a share of the codes can then differ from fp32's)")
    target = output_file(args.output)
    listing = output_file(_files_list(target))
    tok = _load(args)
    if tok.spec.continuous:
        raise InputError(f"{tok.name or tok.family} is a continuous autoencoder: it has latents, not codes to save; "
                         "use `zoo reconstruct`, `zoo eval`, or tok.encode(images).values in Python")
    parts = []
    for _, images in _image_batches(files, tok.spec.image_size, args, "encode", str(tok.device)):
        parts.append(tok.encode(images.to(tok.device, non_blocking=True),
                                num_tokens=budget[0] if budget else None).to("cpu"))
    codes = Codes.cat(parts)
    codes.save(target)
    atomic_write_text(listing, "".join(f"{f}\n" for f in files))
    bits = codes.bits()
    print(f"wrote {args.output}: {codes.batch_size} image(s), indices {tuple(codes.indices.shape)}, "
          f"{float(bits.mean()) / 8:.1f} bytes/image")
    return 0


def _files_list(codes_path: str | os.PathLike) -> Path:
    """The ``.files.txt`` beside a codes file: the input files, one per line, in the order of the codes."""
    text = str(codes_path)
    return Path(text[:-len(".safetensors")] + ".files.txt" if text.endswith(".safetensors") else text + ".files.txt")


def cmd_decode(args: argparse.Namespace) -> int:
    from .api import Codes
    from .images import save_image

    codes = Codes.load(args.codes)
    out = output_dir(args.output)
    if args.model is None:
        if codes.model is None:
            raise InputError(f"{args.codes} does not say which model made it: pass -m NAME")
        args.model = codes.model
    tok = _load(args)
    names_file = _files_list(args.codes)
    listed = [line for line in names_file.read_text(errors="replace").splitlines() if line.strip()] \
        if names_file.is_file() else []
    names = unique_stems(listed, reserved=()) if len(listed) == codes.batch_size else \
        [f"{i:05d}" for i in range(codes.batch_size)]
    index = 0
    for start in _progress(range(0, codes.batch_size, args.batch_size),
                           (codes.batch_size + args.batch_size - 1) // args.batch_size, "decode", not args.quiet):
        images = tok.decode(codes[start:start + args.batch_size]).cpu()
        for img in images:
            save_image(img, out / f"{names[index]}.png")
            index += 1
    print(f"wrote {index} image(s) to {out}" + (renamed_note(listed, names) if len(listed) == len(names) else ""))
    return 0


# -------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = OneLineParser(prog="zoo", description="Image tokenizers: load by name, reconstruct, "
                           "encode/decode, evaluate, train.")
    parser.add_argument("--version", action="version", version=f"visual-tokenizer-zoo {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an unexpected error (also anywhere after the command)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'onedpiece-*'")
    p.add_argument("--family", help="only this family")
    p.add_argument("--json", action="store_true", help="print the entries as JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="show a model's entry, size, token layout and published metrics")
    p.add_argument("model", help="registered name, or a folder written by save_pretrained / zoo convert / zoo train")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.set_defaults(func=cmd_info)

    def common(p: argparse.ArgumentParser, model_default: str | None) -> None:
        """model_default: the model without -m: "default" (the embedded model, so that `zoo reconstruct photo.png`
        works offline at once), or None where the input names it (decode: the codes file)."""
        p.add_argument("-m", "--model", help="registered name, folder, or hf://user/repo" +
                       (f" (default: {model_default}, the embedded model)" if model_default else ""))
        p.set_defaults(default_model=model_default)
        p.add_argument("--checkpoint", help="official checkpoint file for a registered name (downloaded by hand)")
        p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
        p.add_argument("--batch-size", type=positive_int, default=8)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        add_speed_options(p)

    p = sub.add_parser("reconstruct", help="encode and decode images; write PNGs, a comparison grid, PSNR")
    p.add_argument("images", nargs="+", help="image files or folders")
    common(p, model_default="default")
    p.add_argument("-o", "--output", default="reconstructions",
                   help="folder for the PNGs and grid.png (created; default: reconstructions)")
    p.add_argument("--tokens", help="token budgets, e.g. 8,32,256 (variable-length models): one grid column each")
    p.add_argument("--crop", default="center",
                   choices=["center", "center-bilinear", "albumentations", "adm", "var", "none"])
    add_workers_option(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("encode", help="images -> a codes file (safetensors)")
    p.add_argument("images", nargs="+")
    common(p, model_default="default")
    p.add_argument("-o", "--output", default="codes.safetensors",
                   help="codes file to write (its folder is created), plus NAME.files.txt listing the images")
    p.add_argument("--tokens", help="token budget (variable-length models)")
    p.add_argument("--crop", default="center",
                   choices=["center", "center-bilinear", "albumentations", "adm", "var", "none"])
    add_workers_option(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="a codes file -> PNG images")
    p.add_argument("codes")
    common(p, model_default=None)
    p.add_argument("-o", "--output", default="decoded", help="folder for the decoded PNGs (created)")
    p.set_defaults(func=cmd_decode)

    for module in EXTENSIONS:
        importlib.import_module(module).add_commands(sub)
    return parser


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (``zoo: error: ...``, exit 2) instead of usage + message."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    from .progress import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("ZOO_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(quiet=bool(getattr(args, "quiet", False)))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `zoo list | head`: the reader went away; stop quietly like other Unix tools
        sys.stderr.close()
        return 0
    except Exception as exc:
        if debug:
            raise
        code, line = describe_failure(exc)
        print(line, file=sys.stderr)
        return code


def describe_failure(exc: BaseException) -> tuple[int, str]:
    """(exit code, one line) for an exception that reached the command line: 2 for expected failures (bad input,
    files, options), 1 with a hint to rerun with --debug for anything else."""
    if isinstance(exc, ZooError):
        return 2, "zoo: error: " + _one_line(str(exc))
    if isinstance(exc, OSError) and (exc.filename is not None or exc.strerror):
        where = f" {exc.filename}" if exc.filename is not None else ""
        return 2, f"zoo: error: cannot access{where}: {exc.strerror or exc}"
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return 2, "zoo: error: out of memory: " + _one_line(str(exc))[:200] + " (try a smaller --batch-size)"
    return 1, (f"zoo: internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]} "
               "(rerun with --debug for the traceback, and please report it)")


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


if __name__ == "__main__":
    sys.exit(main())
