"""``zoo generate -g NAME --class 207,360 -n 16 --seed 0 -o DIR`` and ``zoo train-generator RECIPE``."""
from __future__ import annotations

import argparse
import json

from ..errors import InputError
from ..progress import progress
from ..outputs import nonnegative_float, output_dir, output_file, positive_int


def _classes(text: str) -> list[int]:
    try:
        classes = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InputError(f"--class takes integer class ids separated by commas, got {text!r}") from None
    if not classes:
        raise InputError(f"--class names no class id: {text!r}")
    return classes


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from ..atomic import atomic_write_text
    from ..cli import _device
    from ..images import make_grid, save_image
    from ..loading import load
    from .loading import load_generator
    from .registry import get_generator_entry, list_generators

    if args.list:
        for name in list_generators():
            e = get_generator_entry(name)
            gfid = ", ".join(f"{m.name} {m.value:g}" for m in e.metrics)
            print(f"{name:<26} tokenizer {e.tokenizer:<16} {gfid:<11} {e.description}")
        return 0
    if not args.generator:
        raise InputError("zoo generate needs -g NAME (a registered generator or a folder; --list shows them)")
    device = _device(args.device)
    out = output_dir(args.output)
    gen = load_generator(args.generator, checkpoint=args.checkpoint, device=device)
    tok_name = args.model or gen.tokenizer
    if tok_name is None:
        raise InputError(f"{args.generator} does not say which tokenizer decodes it: pass -m TOKENIZER")
    tok = load(tok_name, checkpoint=args.tokenizer_checkpoint, device=device)
    gen.check_tokenizer(tok)
    if args.compile:
        gen.compile(backend=args.compile)
    classes = _classes(args.classes) if args.classes is not None else [0]
    n = args.num or len(classes)
    labels = [classes[i % len(classes)] for i in range(n)]
    gen.check_labels(labels)
    settings = {k: v for k, v in dict(num_steps=args.steps, guidance=args.guidance,
                                      temperature=args.temperature).items() if v is not None}
    rng_seed = args.seed
    chunks = [labels[i:i + args.batch_size] for i in range(0, n, args.batch_size)]
    chunks = progress(chunks, total=len(chunks), desc="generate", unit="batch", quiet=args.quiet)
    images, index = [], 0
    for k, chunk in enumerate(chunks):
        # one seed per batch (seed + batch number): the same command gives the same images for any batch size
        # only when the batch size is the same; the seed is recorded in samples.json
        seed = None if rng_seed is None else rng_seed + k
        batch = gen.generate_images(tok, chunk, seed=seed, **settings)
        for label, img in zip(chunk, batch):
            save_image(img, out / f"{index:05d}_class{label}.png")
            index += 1
        images.append(batch)
    allimg = torch.cat(images)
    per_row = max(1, min(8, len(classes) if len(classes) > 1 and n % len(classes) == 0 else 8))
    rows = [allimg[i:i + per_row] for i in range(0, n, per_row)]
    if rows and rows[-1].shape[0] < per_row:
        pad = torch.ones(per_row - rows[-1].shape[0], *allimg.shape[1:])
        rows[-1] = torch.cat([rows[-1], pad])
    grid = save_image(make_grid(rows), out / "grid.png")
    meta = {"generator": gen.name or str(args.generator), "tokenizer": tok_name, "labels": labels,
            "seed": rng_seed, "batch_size": args.batch_size, "settings": {**vars(gen.sampling), **settings}}
    atomic_write_text(out / "samples.json", json.dumps(meta, indent=2) + "\n")
    print(f"wrote {n} image(s) and {grid} to {out}")
    return 0


def cmd_train_generator(args: argparse.Namespace) -> int:
    from ..train.cli import resolve_recipe_path
    from .train import train_generator

    if args.output:
        output_dir(args.output)
    result = train_generator(resolve_recipe_path(args.recipe), args.set or [], output=args.output, quiet=args.quiet)
    print(f"generator: {result.output} (final loss {result.losses[-1]:.4f}); "
          f"sample it with: zoo generate -g {result.output}")
    return 0


def cmd_eval_generator(args: argparse.Namespace) -> int:
    from ..cli import _device
    from ..loading import load
    from .fid import generation_fid
    from .loading import load_generator

    device = _device(args.device)
    target = output_file(args.output) if args.output else None
    gen = load_generator(args.generator, checkpoint=args.checkpoint, device=device)
    tok = load(args.model or gen.tokenizer, checkpoint=args.tokenizer_checkpoint, device=device)
    bar = progress(total=args.num, desc="gFID samples", unit="img", quiet=args.quiet)
    result = generation_fid(gen, tok, args.ref_stats, num_samples=args.num, seed=args.seed,
                            batch_size=args.batch_size, extractor=args.fid_extractor,
                            inception_weights=args.inception_weights,
                            progress=lambda done, total: bar.update(done - bar.n))
    bar.close()
    text = json.dumps(result, indent=2, default=str) + "\n"
    if target is not None:
        from ..atomic import atomic_write_text

        atomic_write_text(target, text)
    print(f"gFID {result['gfid']:.4f} ({result['n']} samples vs {result['reference_n']} reference images)")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample images from a class-conditional generator",
                       description="Sample codes with a generator (its published sampler settings by default) and "
                                   "decode them with its tokenizer; writes one PNG per sample and grid.png.")
    p.add_argument("-g", "--generator", help="registered generator (zoo generate --list) or a folder")
    p.add_argument("--checkpoint", help="the generator's official checkpoint file (downloaded by hand)")
    p.add_argument("-m", "--model", help="tokenizer (default: the one the generator pairs with)")
    p.add_argument("--tokenizer-checkpoint", help="the tokenizer's official checkpoint file")
    p.add_argument("--class", dest="classes", help="class ids, e.g. 207,360 (ImageNet: 207 golden retriever)")
    p.add_argument("-n", "--num", type=positive_int,
                   help="number of images (labels cycle through --class; default one each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=positive_int, help="sampling steps (default: the published setting)")
    p.add_argument("--guidance", type=nonnegative_float, help="classifier-free guidance scale (finite, >= 0)")
    p.add_argument("--temperature", type=nonnegative_float,
                   help="sampling temperature (MaskGIT: randomize_temperature; finite, >= 0)")
    p.add_argument("-o", "--output", default="samples",
                   help="folder for the PNGs, grid.png and samples.json (created; default: samples)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--compile", nargs="?", const="inductor", metavar="BACKEND",
                   help="torch.compile the generator's transformer (backend inductor unless named; same codes; the "
                        "first batch compiles, which pays off over many batches)")
    p.add_argument("--list", action="store_true", help="list the registered generators")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("eval-generator", help="generation FID against cached reference statistics",
                       description="Sample N class-balanced images, extract features and compute the FID against "
                                   "reference statistics written by `zoo eval --ref-stats` (published protocol: "
                                   "N = 50000, 50 per class, ADM evaluator; see docs/generate.md).")
    p.add_argument("-g", "--generator", required=True)
    p.add_argument("--checkpoint")
    p.add_argument("-m", "--model", help="tokenizer (default: the one the generator pairs with)")
    p.add_argument("--tokenizer-checkpoint")
    p.add_argument("--ref-stats", required=True, help="reference statistics .npz (zoo eval --ref-stats)")
    p.add_argument("-n", "--num", type=positive_int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=50)
    p.add_argument("--fid-extractor", default="inception")
    p.add_argument("--inception-weights")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", help="write the result as JSON to this file (its folder is created)")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_eval_generator)

    p = sub.add_parser("train-generator", help="train a class-conditional generator on a tokenizer's codes",
                       description="Pre-tokenize the recipe's images once (code cache), then train a MaskGIT "
                                   "generator on the codes.")
    p.add_argument("recipe", help="recipes/generator/<name>.yaml or generator/<name>")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set tokenizer=default --set train.max_steps=50")
    p.add_argument("-o", "--output", help="run folder (default: the recipe's output); the generator goes to OUTPUT/generator")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train_generator)
