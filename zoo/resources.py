"""Files that ship inside the package and are found by name: training recipes and evaluation suites.

They live at the top of the source checkout (``recipes/<family>/<name>.yaml``, ``eval/suites/<name>.yaml``) and are
installed as package data (``zoo/recipes``, ``zoo/eval/suites``), so `zoo train vqgan/tiny`, `zoo train
recipes/vqgan/tiny.yaml` and `zoo eval --suite rate-distortion` work from any folder after ``pip install .``.
A file that exists where the user points always wins over the shipped one of the same name.
"""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, did_you_mean

PACKAGE_DIR = Path(__file__).resolve().parent
RECIPES_DIR = PACKAGE_DIR / "recipes"
SUITES_DIR = PACKAGE_DIR / "eval" / "suites"


def shipped_recipes() -> list[str]:
    """Short names (``family/name``) of the recipes that ship with the package."""
    return sorted(f"{p.parent.name}/{p.stem}" for p in RECIPES_DIR.glob("*/*.yaml"))


def shipped_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def _short_recipe_name(text: str) -> str:
    """``recipes/vqgan/tiny.yaml``, ``./recipes/vqgan/tiny.yaml``, ``vqgan/tiny.yaml``, ``vqgan/tiny`` -> ``vqgan/tiny``."""
    name = text.replace("\\", "/")
    if "recipes/" in name:
        name = name.rsplit("recipes/", 1)[1]
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.strip("/")


def recipe_path(text: str) -> Path:
    """The recipe file `text` names: an existing path, else ``recipes/<family>/<name>.yaml`` under the current
    folder, else the shipped recipe of that name (``family/name``, with or without ``recipes/`` and ``.yaml``).

    Raises ConfigError naming the closest shipped recipes when none of these exists.
    """
    path = Path(text)
    if path.is_file():
        return path
    name = _short_recipe_name(text)
    for root in (Path.cwd() / "recipes", RECIPES_DIR):
        candidate = root / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    known = shipped_recipes()
    raise ConfigError(f"recipe file not found: {text} (and no shipped recipe {name!r}).{did_you_mean(name, known)} "
                      f"Shipped recipes: {', '.join(known)}")


def suite_path(text: str) -> Path:
    """An evaluation suite: an existing YAML path, else the shipped suite of that name (``rate-distortion``)."""
    path = Path(text)
    if path.is_file():
        return path
    name = path.stem if path.suffix in (".yaml", ".yml") else text
    candidate = SUITES_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = shipped_suites()
    raise ConfigError(f"no suite {text!r}; shipped: {', '.join(known)} (or give a YAML path)."
                      f"{did_you_mean(name, known)}")
