"""Evaluation harness: rFID / FID, PSNR, SSIM, LPIPS, codebook usage, bits, speed; rate–distortion; reports.

>>> from zoo.eval import evaluate
>>> evaluate(tok, "val_images/", metrics=("rfid", "psnr"), inception_weights="weights-inception-...pth")

See docs/eval.md for the protocol.
"""
from .data import DataSpec, loader, parse_data
from .features import CustomExtractor, FeatureExtractor, InceptionExtractor, build_extractor
from .metrics import LPIPS, CodeUsage, psnr, ssim
from .runner import ALL_METRICS, EvalConfig, Evaluator, evaluate, fid, protocol
from .stats import FeatureStats, ReferenceStats, frechet_distance

__all__ = ["DataSpec", "loader", "parse_data", "CustomExtractor", "FeatureExtractor", "InceptionExtractor",
           "build_extractor", "LPIPS", "CodeUsage", "psnr", "ssim", "ALL_METRICS", "EvalConfig", "Evaluator",
           "evaluate", "fid", "protocol", "FeatureStats", "ReferenceStats", "frechet_distance"]
