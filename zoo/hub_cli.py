"""`zoo push`, `zoo convert` and `zoo card`: the hub on the command line (added to `zoo` through cli.EXTENSIONS)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _is_generator_folder(target: str) -> bool:
    config = Path(target) / "config.json"
    try:
        return config.is_file() and str(json.loads(config.read_text()).get("format", "")).startswith("zoo.generator")
    except (OSError, ValueError):
        return False


def cmd_push(args: argparse.Namespace) -> int:
    from .hub import push_to_hub
    from .loading import load

    if _is_generator_folder(args.model):  # a generator folder (zoo train-generator): same command, same hub layout
        from .generate.hub import push_generator
        from .generate.loading import load_generator

        result = push_generator(load_generator(args.model), args.repo, commit_message=args.message,
                                private=args.private, token=args.token, endpoint=args.endpoint, branch=args.branch,
                                tag=args.tag, base_model=args.base_model, datasets=args.dataset)
        print(f"pushed generator {args.model} to {result['repo_id']} (commit {result['commit'][:12]}); load it with: "
              f"zoo.load_generator(\"hf://{result['repo_id']}\") or zoo generate -g hf://{result['repo_id']}")
        return 0
    model = load(args.model, checkpoint=args.checkpoint)
    result = push_to_hub(model, args.repo, commit_message=args.message, private=args.private, token=args.token,
                         endpoint=args.endpoint, branch=args.branch, tag=args.tag, eval_report=args.eval_report,
                         recipe=args.recipe, base_model=args.base_model, datasets=args.dataset)
    pin = result["commit"]
    print(f"pushed {args.model} to {result['repo_id']} (commit {pin[:12]}{', tag ' + args.tag if args.tag else ''})")
    print(f"load it with: zoo.load(\"hf://{result['repo_id']}\")  or pinned: zoo.load(\"hf://{result['repo_id']}@{pin}\")")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .cards import card_info, render_card
    from .hub import CARD_NAME, file_sha256, write_folder
    from .loading import load
    from .registry import get_entry

    from .outputs import output_dir

    entry = get_entry(args.model)
    out = output_dir(args.output)
    model = load(entry.name, checkpoint=args.checkpoint)
    write_folder(model, out, extra={"source": {"file": Path(args.checkpoint).name,
                                               "sha256": file_sha256(args.checkpoint),
                                               "repo": entry.hub_repo, "revision": entry.hub_revision}})
    from .atomic import atomic_write_text

    atomic_write_text(out / CARD_NAME, str(render_card(card_info(model, entry))))
    print(f"converted {args.checkpoint} ({entry.name}) -> {out}/ (config.json, model.safetensors, {CARD_NAME}); "
          f"load it with zoo.load({str(out)!r}) or push it with `zoo push {out} --repo USER/REPO`")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from .cards import card_info_for, render_card

    target = None
    if args.output:
        from .outputs import output_file

        target = output_file(args.output)
    info = card_info_for(args.model, repo_id=args.repo)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    text = str(render_card(info))
    if target is not None:
        from .atomic import atomic_write_text

        atomic_write_text(target, text)
        print(f"wrote {target}")
    else:
        print(text)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="push a model (name or folder) or a generator folder to the Hugging Face Hub with "
                       "its model card")
    p.add_argument("model", help="registered name, folder written by save_pretrained/convert/train, a generator folder "
                   "(train-generator), or hf://user/repo")
    p.add_argument("--repo", required=True, help="target hub repo, user/repo")
    p.add_argument("--checkpoint", help="official checkpoint file for a registered name (downloaded by hand)")
    p.add_argument("--eval-report", help="report.json of `zoo eval` (or a JSON list of {metric, value, dataset, "
                   "protocol}): its numbers go into the card as measured")
    p.add_argument("--tag", help="also tag the commit (e.g. v1), so hf://user/repo@v1 pins it")
    p.add_argument("--branch", help="commit on this existing branch instead of main")
    p.add_argument("--message", help="commit message")
    p.add_argument("--recipe", help="training recipe text for the card (e.g. 'recipes/convfsq/default.yaml, 2 CPU threads')")
    p.add_argument("--base-model", help="hub repo the weights come from or were fine-tuned from (card front matter; "
                   "default: the official repo of a converted registered model)")
    p.add_argument("--dataset", action="append", help="hub id of a training dataset (repeatable; card front matter)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--token", help="hub token (default: the one saved by `hf auth login`)")
    p.add_argument("--endpoint", help="hub URL (default: HF_ENDPOINT or https://huggingface.co)")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("convert", help="an official checkpoint file -> our folder (config.json, model.safetensors, "
                       "README.md)")
    p.add_argument("model", help="registered name the checkpoint belongs to (zoo list)")
    p.add_argument("--checkpoint", required=True, help="the official file (safetensors or torch pickle)")
    p.add_argument("-o", "--output", required=True, help="folder to write: config.json, model.safetensors, README.md")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("card", help="render a registered model's card (README.md for the hub)")
    p.add_argument("model")
    p.add_argument("--repo", help="hub repo the card is for (used in the usage snippet)")
    p.add_argument("-o", "--output", help="write the card here instead of printing it")
    p.add_argument("--json", action="store_true", help="print the card's data instead")
    p.set_defaults(func=cmd_card)
