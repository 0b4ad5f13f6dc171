"""Quantizers shared by every family. Inputs are channel-last ``[..., D]``; indices come back as int64."""
from .vq import QuantizerOutput, VectorQuantizer
from .fsq import FiniteScalarQuantizer
from .lfq import LookupFreeQuantizer
from .ibq import IndexBackpropQuantizer
from .multicodebook import MultiCodebookQuantizer
from .product import ProductQuantizer
from .multiscale import MultiScaleResidualQuantizer
from .usage import codebook_usage

__all__ = [
    "QuantizerOutput", "VectorQuantizer", "FiniteScalarQuantizer", "LookupFreeQuantizer", "MultiCodebookQuantizer",
    "ProductQuantizer", "MultiScaleResidualQuantizer", "IndexBackpropQuantizer", "codebook_usage",
]
