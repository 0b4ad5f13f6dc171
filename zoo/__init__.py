"""visual-tokenizer-zoo: published image tokenizers behind one interface.

>>> import zoo
>>> zoo.list_models()
>>> tok = zoo.load("maskgit-vqgan", checkpoint="maskgit-vqgan-imagenet-f16-256.bin")
>>> codes = tok.encode(images)          # images: float [B, 3, H, W] in [0, 1]
>>> recon = tok.decode(codes)
"""
__version__ = "0.1.0"

from .api import Codes, Latents, Tokenizer, TokenizerSpec, check_images
from .errors import CheckpointError, ConfigError, InputError, OfflineError, UnknownModelError, ZooError
from .loading import build, from_official, load, load_folder, save_pretrained
from .registry import FamilySpec, Metric, ModelEntry, get_entry, list_families, list_models, register_family, register_model
from .wrap import wrap  # your own tokenizer behind the interface (docs/your-tokenizer.md)
from .generate import load_generator  # class-conditional generators on tokenizer codes (docs/generate.md)

__all__ = [
    "__version__", "Codes", "Latents", "wrap", "Tokenizer", "TokenizerSpec", "check_images", "build", "from_official", "load",
    "load_folder", "save_pretrained", "list_models", "list_families", "get_entry", "register_model",
    "register_family", "ModelEntry", "FamilySpec", "Metric", "ZooError", "InputError", "UnknownModelError",
    "CheckpointError", "ConfigError", "OfflineError", "load_generator",
]
