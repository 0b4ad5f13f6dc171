"""Building blocks written once and shared by every family."""
from .vit import Attention, Mlp, GluMlp, LayerScale, Block, Transformer
from .maskgit_vqgan import MaskGITConvConfig, ResnetBlock, MaskGITEncoder, MaskGITDecoder

__all__ = [
    "Attention", "Mlp", "GluMlp", "LayerScale", "Block", "Transformer",
    "MaskGITConvConfig", "ResnetBlock", "MaskGITEncoder", "MaskGITDecoder",
]
