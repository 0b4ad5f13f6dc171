"""``zoo train RECIPE [--set key=value ...] [-o DIR] [--resume] [--check]``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def resolve_recipe_path(text: str) -> Path:
    """A YAML path, or a shipped recipe by name (``family/name``, ``recipes/family/name.yaml``): see zoo.resources."""
    from ..resources import recipe_path

    return recipe_path(text)


def cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from .recipe import load_recipe
    from .trainer import train

    from ..outputs import output_dir

    path = resolve_recipe_path(args.recipe)
    if args.output and not args.check:
        output_dir(args.output)
    if args.check:
        rec = load_recipe(path, args.set or [])
        if args.output:
            rec.output = args.output
        print(yaml.safe_dump(rec.to_dict(), sort_keys=False), end="")
        print(f"# recipe OK: {path}")
        return 0
    result = train(path, args.set or [], output=args.output, resume=args.resume, quiet=args.quiet)
    if result.model_dir is None:
        raise ConfigError("training stopped before its last step")
    print(f"trained {result.step} steps; model: {result.model_dir}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a tokenizer with a recipe (accelerate: CPU, GPU, DDP, FSDP)",
                       description="Train with a recipe YAML. Multi-process: accelerate launch -m zoo.cli train ... "
                                   "or torchrun --nproc_per_node N -m zoo.cli train ... (CPU: ACCELERATE_USE_CPU=yes).")
    p.add_argument("recipe", help="recipes/<family>/<name>.yaml, or <family>/<name>")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set train.max_steps=100 --set data.paths=[photos/]")
    p.add_argument("-o", "--output", help="run folder (default: the recipe's output)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's newest checkpoint")
    p.add_argument("--check", action="store_true", help="validate the recipe (keys, types, data paths) and print it")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar; warnings and errors only")
    p.set_defaults(func=cmd_train)
