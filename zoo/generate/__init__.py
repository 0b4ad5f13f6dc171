"""Generation: class-conditional generators on the codes of zoo tokenizers (see docs/generate.md).

>>> from zoo.generate import load_generator
>>> gen = load_generator("maskgit-titok-l32", checkpoint="generator_titok_l32.bin")
>>> codes = gen.sample([207, 360], seed=0)            # Codes [2, 32, 1], the published sampler settings
>>> images = gen.generate_images(zoo.load("titok-l32"), [207, 360], seed=0)

Families: "maskgit" (TiTok / One-D-Piece MaskGIT, or trained on any single-group tokenizer), "var" (ImageFolder's
VAR-d17 next-scale generator) and "ar" (a grouped next-token GPT for G sub-codes per position, `zoo.generate.ar`).
"""
from .api import Generator, MaskGITGenerator
from .loading import build_generator, from_official, load_folder, load_generator, save_generator
from .maskgit import MaskGITConfig, MaskGITSampling
from .registry import GeneratorEntry, get_generator_entry, list_generators, register_generator
from .var import VARConfig, VARGenerator, VARSampling

__all__ = ["Generator", "MaskGITGenerator", "MaskGITConfig", "MaskGITSampling", "VARGenerator", "VARConfig",
           "VARSampling", "GeneratorEntry", "build_generator", "from_official", "load_generator", "load_folder",
           "save_generator", "get_generator_entry", "list_generators", "register_generator"]
