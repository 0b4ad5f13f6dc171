"""Model cards: the data of a tokenizer (entry, spec, config, metrics) and its rendering into a hub README.md.

`card_info(model, entry, eval_report)` gathers everything a card shows as plain data (also what `zoo info` can
print); `render_card(...)` fills the family's Jinja template from ``model_cards/`` (``generic.md.j2`` when the
family has none) and returns a `huggingface_hub.ModelCard` whose front matter (library name, tags, license,
model-index) is what the hub expects. `check_card(text)` parses a README back the way the hub does.

Eval reports: the ``report.json`` written by ``zoo eval`` (``{"meta": {"data", ...}, "results": [one row per model
and token budget with psnr/ssim/lpips/rfid and its protocol]}``; the rows of the pushed model are used), or any
JSON holding a list of ``{"metric", "value", "dataset", "protocol"}`` objects (top-level, or under ``"results"`` /
``"metrics"``).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import InputError
from .registry import Metric, ModelEntry

LIBRARY_NAME = "visual-tokenizer-zoo"
TEMPLATE_DIR = Path(os.environ.get("ZOO_MODEL_CARDS", Path(__file__).resolve().parent / "model_cards"))

# Metric names -> (model-index metric type, task type, task name). Unknown names keep their own lower-case slug.
_METRIC_TYPES = {"rfid": ("fid", "image-to-image", "Image reconstruction"),
                 "gfid": ("fid", "unconditional-image-generation", "Image generation"),
                 "fid": ("fid", "image-to-image", "Image reconstruction"),
                 "psnr": ("psnr", "image-to-image", "Image reconstruction"),
                 "ssim": ("ssim", "image-to-image", "Image reconstruction"),
                 "lpips": ("lpips", "image-to-image", "Image reconstruction"),
                 "is": ("inception_score", "unconditional-image-generation", "Image generation")}
_DATASETS = {"imagenet": "ILSVRC/imagenet-1k", "coco": "detection-datasets/coco"}
# The hub datasets the released models were trained on (front matter `datasets`), by registered name; models
# trained on sets without a hub id (ImageNet-100, scikit-image photos) list none. An entry's
# ``extra["datasets"]`` or `card_info(datasets=...)` overrides this.
_TRAINED_ON: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"-in100$", ()),
    (r"^(titok|onedpiece|imagefolder|maskgit-vqgan|alit)-?", ("ILSVRC/imagenet-1k",)),
    (r"^unitok", ("mlfoundations/datacomp_1b",)),
)


def read_eval_report(path: str | os.PathLike, model: str | None = None) -> tuple[list[Metric], str]:
    """Metrics of an eval report file -> (metrics, source label). See the module docstring for the formats.

    model: the name (or family) of the model the card is for; picks its rows out of a ``zoo eval`` report that
        compares several models or codecs.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"eval report {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"eval report {path} is not valid JSON: {exc}") from None
    items = data
    meta: Mapping[str, Any] = {}
    if isinstance(data, Mapping):
        items = data.get("results", data.get("metrics"))
        meta = data.get("meta") or {}
    if not isinstance(items, list):
        raise InputError(f"eval report {path}: expected a list of {{metric, value, dataset, protocol}} objects "
                         "(top-level or under 'results'), or a `zoo eval` report.json")
    if items and all(isinstance(i, Mapping) and "metric" not in i and "model" in i for i in items):
        return _zoo_eval_rows(path, items, meta, model), path.name
    metrics = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not {"metric", "value", "dataset"} <= set(item):
            raise InputError(f"eval report {path}: item {i} needs 'metric', 'value' and 'dataset' "
                             f"(and should give 'protocol'), got {item!r}")
        try:
            value = float(item["value"])
        except (TypeError, ValueError):
            raise InputError(f"eval report {path}: item {i} value {item['value']!r} is not a number") from None
        metrics.append(Metric(str(item["metric"]), value, str(item["dataset"]), str(item.get("protocol", "")),
                              str(item.get("source", path.name))))
    return metrics, path.name


_EVAL_COLUMNS = (("psnr", "PSNR"), ("ssim", "SSIM"), ("lpips", "LPIPS"), ("rfid", "rFID"))


def _zoo_eval_rows(path: Path, rows: list, meta: Mapping[str, Any], model: str | None) -> list[Metric]:
    """Rows of a ``zoo eval`` report.json (one per model and token budget) -> the card's measured metrics."""
    tokenizers = [r for r in rows if r.get("family") != "codec"]
    names = sorted({str(r["model"]) for r in tokenizers})
    if model is not None and model in names:
        mine = [r for r in tokenizers if r["model"] == model]
    elif len(names) == 1:
        mine = tokenizers
    else:
        raise InputError(f"eval report {path} has results for {names}; none is {model!r} (evaluate this model, "
                         "or push a model whose name matches)")
    budgets = {r.get("num_tokens") for r in mine}
    out = []
    for r in mine:
        proto = dict(r.get("protocol") or {})
        base = "; ".join(f"{k}: {proto[k]}" for k in ("crop", "quantize") if k in proto)
        dataset = f"{meta.get('data', 'unnamed data')} ({r.get('images', '?')} images, {r.get('image_size', '?')}px)"
        suffix = f" @ {r['num_tokens']} tokens" if len(budgets) > 1 and r.get("num_tokens") is not None else ""
        for key, label in _EVAL_COLUMNS:
            if r.get(key) is None:
                continue
            extra = ""
            if key == "rfid":
                ext = r.get("fid_extractor") or {}
                extra = (f"; FID features: {proto.get('fid_features') or ext.get('name', '?')}"
                         f"{' (sha256 ' + str(ext['sha256'])[:12] + ')' if ext.get('sha256') else ''}"
                         f"; reference: the same crops (N = {r.get('rfid_reference_n', '?')})")
            elif key == "lpips" and r.get("lpips_net"):
                extra = f"; LPIPS net: {r['lpips_net']}"
            out.append(Metric(label + suffix, float(r[key]), dataset, base + extra, path.name))
    return out


def _layout_text(spec: Mapping[str, Any]) -> str:
    if spec["token_layout"] == "2d" and spec.get("grid"):
        return f"2-D grid {spec['grid'][0]}x{spec['grid'][1]} (row-major)"
    if spec["token_layout"] == "multiscale" and spec.get("scales"):
        return f"multi-scale (coarse to fine), tokens per scale {spec['scales']}"
    return "1-D sequence"


def training_datasets(entry: ModelEntry | None) -> list[str]:
    """Hub ids of the datasets a registered model was trained on (see _TRAINED_ON)."""
    if entry is None:
        return []
    if entry.extra.get("datasets") is not None:
        return list(entry.extra["datasets"])
    for pattern, ids in _TRAINED_ON:
        if re.search(pattern, entry.name):
            return list(ids)
    return []


def card_info(model: Any, entry: ModelEntry | None = None, measured: Sequence[Metric] = (),
              measured_source: str = "", repo_id: str | None = None, recipe: str | None = None,
              base_model: str | None = None, datasets: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything a card shows, as plain data.

    model: a `Tokenizer` (may live on the meta device: only its config, spec and parameter count are read).
    entry: the registered entry (published metrics, license, citation), when the model has one.
    base_model: the hub repo these weights come from (front matter ``base_model``); default: the official repo
        of an entry whose weights are a converted official checkpoint.
    datasets: hub ids of the training data (front matter ``datasets``); default: `training_datasets(entry)`.
    """
    from .config import config_to_dict
    from .registry import get_family

    fam = get_family(model.family)
    spec = model.spec.as_dict()
    name = (entry.name if entry else None) or model.name or (repo_id.split("/")[1] if repo_id else model.family)
    lo, hi = spec["min_tokens"], spec["max_tokens"]
    tokens = f"{hi}" if lo == hi else f"any of {spec['token_choices']}" if spec["token_choices"] else f"{lo} to {hi}"
    if recipe is None:
        if entry is not None and entry.extra.get("recipe"):
            recipe = str(entry.extra["recipe"])
        elif entry is not None and entry.checkpoint_format == "official":
            recipe = (f"Trained by the original authors with their released code ({entry.code or fam.official_repo}); "
                      f"see the paper ({entry.paper or 'not given'}). These weights are the official checkpoint "
                      "converted to visual-tokenizer-zoo's layout (strict key mapping, no retraining).")
        else:
            recipe = "Not recorded. Pass `recipe=` to push_to_hub (e.g. the recipe file and command used)."
    return {
        "name": name, "title": f"{name} ({fam.name} image tokenizer)", "family": fam.name,
        "family_description": fam.description, "description": (entry.description if entry else "") or fam.description,
        "official_code": (entry.code if entry else "") or fam.official_repo,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "config": config_to_dict(model.config), "spec": spec, "layout_text": _layout_text(spec),
        "tokens_text": tokens, "recipe": recipe,
        "published": [m.__dict__ for m in (entry.metrics if entry else ())],
        "measured": [m.__dict__ for m in measured], "measured_source": measured_source,
        "license": entry.license if entry else "", "citation": entry.citation if entry else "",
        "paper": entry.paper if entry else "", "tags": list(entry.tags) if entry else [],
        "load_id": f"hf://{repo_id}" if repo_id else name,
        "base_model": base_model or (entry.hub_repo if entry is not None and entry.checkpoint_format == "official"
                                     and entry.hub_repo != repo_id else None),
        "datasets": list(datasets) if datasets is not None else training_datasets(entry),
    }


def _dataset_id(dataset: str) -> str:
    low = dataset.lower()
    for key, hub_id in _DATASETS.items():
        if key in low:
            return hub_id
    return re.sub(r"[^a-z0-9]+", "-", low).strip("-")[:60] or "unknown"


def _eval_results(info: Mapping[str, Any]) -> list:
    from huggingface_hub import EvalResult

    out = []
    for m, origin in [(m, "published") for m in info["published"]] + [(m, "measured") for m in info["measured"]]:
        metric_type, task_type, task_name = _METRIC_TYPES.get(
            m["name"].lower(), (re.sub(r"[^a-z0-9]+", "_", m["name"].lower()).strip("_"), "image-to-image",
                                "Image reconstruction"))
        # published numbers cite their source (the hub wants a URL with a source name); ours say so in the name
        # and sit in their own model-index group (the hub groups results by task + dataset + dataset config and
        # gives each group one source, so sharing a group would credit our numbers to the paper)
        source_url = (info["paper"] or info["official_code"] or None) if origin == "published" else None
        out.append(EvalResult(
            task_type=task_type, task_name=task_name, dataset_type=_dataset_id(m["dataset"]),
            dataset_name=m["dataset"], dataset_config=None if origin == "published" else "zoo-eval",
            dataset_split="validation" if re.search(r"\bval", m["dataset"].lower()) else None,
            metric_type=metric_type, metric_value=float(m["value"]),
            metric_name=m["name"] if origin == "published" else f"{m['name']} (measured with {LIBRARY_NAME})",
            metric_config=(m.get("protocol") or None), verified=False,
            source_name=(m.get("source") or "published") if source_url else None, source_url=source_url,
        ))
    return out


def card_data(info: Mapping[str, Any]):
    """The README front matter as a `huggingface_hub.ModelCardData`."""
    from huggingface_hub import ModelCardData

    layout_tag = {"2d": "2d-tokens", "1d": "1d-tokens", "multiscale": "multiscale-tokens"}[info["spec"]["token_layout"]]
    tags = sorted({LIBRARY_NAME, "image-tokenization", "vector-quantization", info["family"], layout_tag,
                   *info["tags"]})
    results = _eval_results(info)
    license_ = info["license"] or None
    return ModelCardData(library_name=LIBRARY_NAME, tags=tags, license=license_, pipeline_tag="image-to-image",
                         base_model=info.get("base_model") or None, datasets=info.get("datasets") or None,
                         model_name=info["name"] if results else None, eval_results=results or None)


def render_card(info: Mapping[str, Any]):
    """Fill the family's template (``model_cards/{family}.md.j2``, else ``generic.md.j2``) -> `ModelCard`."""
    import jinja2
    from huggingface_hub import ModelCard

    if not (TEMPLATE_DIR / "generic.md.j2").is_file():
        raise InputError(f"model card templates not found in {TEMPLATE_DIR} (set ZOO_MODEL_CARDS to the folder "
                         "holding generic.md.j2)")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    name = f"{info['family']}.md.j2"
    template = env.get_template(name if (TEMPLATE_DIR / name).is_file() else "generic.md.j2")
    downsample = None
    if info["spec"].get("grid"):
        downsample = info["spec"]["image_size"] // info["spec"]["grid"][0]
    text = template.render(**info, card_data=card_data(info).to_yaml(),
                           config_json=json.dumps(info["config"], indent=2), downsample=downsample)
    return ModelCard(text)


def check_card(text: str) -> list[str]:
    """Problems the hub would report for a README's front matter (empty when it is valid).

    A missing license is allowed (the hub only warns; the card body then says "unknown").
    """
    import yaml
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    problems = []
    try:
        card = ModelCard(text)
    except Exception as exc:  # ModelCard raises ValueError for broken front matter
        return [f"front matter does not parse: {exc}"]
    front = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    meta = (yaml.safe_load(front.group(1)) if front else None) or {}
    if meta.get("library_name") != LIBRARY_NAME:
        problems.append(f"library_name is {meta.get('library_name')!r}, not {LIBRARY_NAME!r}")
    if not isinstance(meta.get("tags"), list) or not meta["tags"]:
        problems.append("no tags")
    if "model-index" in meta:
        try:
            model_index_to_eval_results(meta["model-index"])
        except Exception as exc:
            problems.append(f"model-index does not parse: {exc}")
    if card.data.license is not None and not isinstance(card.data.license, str):
        problems.append(f"license must be a string, got {card.data.license!r}")
    return problems


def card_info_for(name: str, repo_id: str | None = None) -> dict[str, Any]:
    """`card_info` of a registered model, built on the meta device (nothing allocated, nothing downloaded)."""
    import torch

    from .config import config_from_dict
    from .registry import get_entry, get_family

    entry = get_entry(name)
    fam = get_family(entry.family)
    with torch.device("meta"):
        model = fam.tokenizer_cls(config_from_dict(fam.config_cls, dict(entry.config), where=f"{name} config"))
    model.name = entry.name
    return card_info(model, entry, repo_id=repo_id)


def info_lines(name: str) -> list[str]:
    """What `zoo info NAME` can add about the card: hub metadata, token layout, recipe (one line each)."""
    info = card_info_for(name)
    data = card_data(info)
    n_results = len(data.eval_results or [])
    return [f"  card:        library {data.library_name}, tags {', '.join(data.tags)}; "
            f"{n_results} model-index result(s); `zoo card {name}` prints it",
            f"  layout:      {info['layout_text']}, {info['tokens_text']} token(s) per image",
            f"  recipe:      {info['recipe']}"]
