"""Training on accelerate: one trainer for every family, driven by recipe YAML files (see docs/train.md).

>>> from zoo.train import train
>>> result = train("recipes/vqgan/tiny.yaml", ["train.max_steps=50"], output="runs/tiny")
>>> tok = zoo.load(result.model_dir)
"""
from .adapters import FamilyAdapter, StepOutput, get_adapter, register_adapter
from .recipe import Recipe, load_recipe, parse_overrides
from .trainer import TrainResult, train

__all__ = ["train", "TrainResult", "Recipe", "load_recipe", "parse_overrides", "FamilyAdapter", "StepOutput",
           "get_adapter", "register_adapter"]
