"""The released MaskGIT generators of TiTok (bytedance/1d-tokenizer) and One-D-Piece (turingmotors), with the
sampler settings of their inference / generator configs and their published gFID: `RELEASED`, which
`zoo.generate.registry` registers on first use."""
from __future__ import annotations

from ..entries import Metric
from .entry import GeneratorEntry

RELEASED: list[GeneratorEntry] = []

_BERT = dict(codebook_size=4096, num_classes=1000, width=768, depth=24, heads=16, mlp_dim=3072, arch="bert")
_UVIT = dict(codebook_size=4096, num_classes=1000, width=1024, depth=20, heads=16, mlp_dim=4096, arch="uvit")
_DATASET = "ImageNet 256x256 class-conditional, 50k samples (50 per class)"
_PROTOCOL = ("seed 42, labels 0..999 repeated, batches of 125; ADM evaluator (guided-diffusion evaluations/"
             "evaluator.py) against VIRTUAL_imagenet256_labeled.npz")

# name, tokenizer, config, sampling (steps, temperature, guidance, decay, softmax annealing), hub, gFID, source
_TITOK_CODE = "https://github.com/bytedance/1d-tokenizer"
_ODP_CODE = "https://github.com/turingmotors/One-D-Piece"
for _tok, _cfg, _n, _steps, _temp, _cfg_scale, _decay, _gfid in (
        ("titok-l32", _BERT, 32, 8, 9.5, 4.5, "linear", 2.77),
        ("titok-b64", _BERT, 64, 8, 11.0, 3.0, "linear", 2.48),
        ("titok-s128", _UVIT, 128, 64, 2.8, 6.9, "power-cosine", 1.97)):
    _short = _tok.split("-")[1]
    RELEASED.append(GeneratorEntry(
        name=f"maskgit-{_tok}", family="maskgit", tokenizer=_tok, config={**_cfg, "seq_len": _n},
        # sample_imagenet_titok.py passes softmax_temperature_annealing=True with the config's settings
        sampling=dict(num_steps=_steps, temperature=_temp, guidance=_cfg_scale, guidance_decay=_decay,
                      guidance_pow=3.0, softmax_annealing=True),
        description=f"MaskGIT ({'UViT' if _cfg is _UVIT else 'ViT/BERT'}) on TiTok-{_short.upper()} codes, "
                    "ImageNet 256 class-conditional",
        hub_repo=f"yucornetto/generator_titok_{_short}_imagenet", hub_file="model.safetensors",
        metrics=(Metric("gFID", _gfid, _DATASET, _PROTOCOL + f"; configs/infer/TiTok/titok_{_short}.yaml",
                        "1d-tokenizer README"),),
        license="apache-2.0", paper="https://arxiv.org/abs/2406.07550", code=_TITOK_CODE,
        extra={"raw_mirror": f"fun-research/TiTok/generator_titok_{_short}.bin"},
    ))

for _size, _steps, _temp, _cfg_scale, _gfid in (("s", 16, 3.0, 12.5, 2.67), ("b", 16, 2.5, 8.5, 2.70),
                                                 ("l", 16, 3.0, 5.5, 2.35)):
    RELEASED.append(GeneratorEntry(
        name=f"maskgit-onedpiece-{_size}-256", family="maskgit", tokenizer=f"onedpiece-{_size}-256",
        config={**_BERT, "seq_len": 256},
        # eval/generator/sample_imagenet.py reads softmax_temperature_annealing from a config that lacks it
        # (OmegaConf gives None), so the published numbers ran without softmax annealing
        sampling=dict(num_steps=_steps, temperature=_temp, guidance=_cfg_scale, guidance_decay="power-cosine",
                      guidance_pow=3.0, softmax_annealing=False),
        description=f"MaskGIT (ViT/BERT) on all 256 One-D-Piece-{_size.upper()} codes, ImageNet 256 "
                    "class-conditional",
        hub_repo=f"turing-motors/MaskGIT_One-D-Piece-{_size.upper()}-256", hub_file="pytorch_model.bin",
        metrics=(Metric("gFID", _gfid, _DATASET, _PROTOCOL.replace("batches of 125", "one GPU, batches of 125, "
                                                                   "bf16 autocast")
                        + f"; configs/training/generator/maskgit_one-d-piece_{_size}256.yaml", "One-D-Piece README"),),
        license="apache-2.0", paper="https://arxiv.org/abs/2501.10064", code=_ODP_CODE,
    ))

# ImageFolder's VAR-d17: next-scale prediction of both product-quantized branches per position (folded tokens)
RELEASED.append(GeneratorEntry(
    name="var-d17-imagefolder-4096", family="var", tokenizer="imagefolder-4096",
    config=dict(scales=[1, 1, 2, 3, 3, 4, 5, 6, 8, 11], code_dim=64, vocab=8192, num_classes=1000, width=1088,
                depth=17, heads=17, mlp_ratio=4.0, l2_norm=True, groups=2),
    sampling=dict(guidance=3.25, top_k=750, top_p=0.95),  # the README's inference command
    description="VAR-d17 (375M; 362M in blocks) on ImageFolder-4096's 286 folded positions (2 branches each), "
                "ImageNet 256 class-conditional",
    hub_repo="ang9867/imagefolder", hub_file="imagenet-var-4096.pt",
    metrics=(Metric("gFID", 2.60, _DATASET.replace("(50 per class)", "(one per ImageNet-val image: 50 per class)"),
                    "inference.py: g_seed = running total + rank, fp16 autocast, cfg 3.25 ramped linearly over the "
                    "scales, top-k 750, top-p 0.95; ADM evaluator against VIRTUAL_imagenet256_labeled.npz",
                    "README of adobe-research/ImageFolder"),),
    license="Adobe Research License (non-commercial research use)", paper="https://arxiv.org/abs/2410.01756",
    code="https://github.com/lxa9867/ImageFolder",
    extra={"hub_copy": "qiuk6/XQ-GAN VAR-d17-MSVR10P2-4096/ar-ckpt-last.pth",
           "note": "the file is a VAR training checkpoint: trainer.var_wo_ddp (this generator) and trainer.vae_local "
                   "(the tokenizer)"},
))

# FoundationVision/VAR's class-conditional generators on VAR's own VQVAE (`var-vqvae`): width 64·depth, depth heads,
# l2-normalised attention, one 4096-code codebook over the 10 scales 1..16 (680 tokens)
_VAR_PROTOCOL = ("autoregressive_infer_cfg(cfg=1.5, top_p=0.96, top_k=900, more_smooth=False), 50 per class, saved "
                 "as PNG; OpenAI ADM evaluator against VIRTUAL_imagenet256_labeled.npz")
for _depth, _params, _gfid in ((16, "310M", 3.55), (20, "600M", 2.95), (24, "1.0B", 2.33), (30, "2.0B", 1.97)):
    RELEASED.append(GeneratorEntry(
        name=f"var-d{_depth}", family="var", tokenizer="var-vqvae",
        config=dict(scales=[1, 2, 3, 4, 5, 6, 8, 10, 13, 16], code_dim=32, vocab=4096, num_classes=1000,
                    width=64 * _depth, depth=_depth, heads=_depth, mlp_ratio=4.0, l2_norm=True, groups=1),
        sampling=dict(guidance=1.5, top_k=900, top_p=0.96),  # the README's FID-evaluation settings
        description=f"VAR-d{_depth} ({_params}) next-scale generator on VAR's VQVAE (680 tokens over 10 scales), "
                    "ImageNet 256 class-conditional",
        hub_repo="FoundationVision/var", hub_file=f"var_d{_depth}.pth",
        metrics=(Metric("gFID", _gfid, _DATASET, _VAR_PROTOCOL, "README of FoundationVision/VAR (model zoo table)"),)
        + ((Metric("gFID", 1.80, _DATASET, "VAR-d30-re row of the README (same weights, its re-evaluated setting)",
                   "README of FoundationVision/VAR"),) if _depth == 30 else ()),
        license="mit", paper="https://arxiv.org/abs/2404.02905", code="https://github.com/FoundationVision/VAR",
    ))
