"""A user's own VQ tokenizer, evaluated beside the zoo's models (docs/your-tokenizer.md).

`PaletteVQ` is a deliberately small VQ model that needs no training, so the example runs anywhere in seconds: the
encoder averages each 8x8 patch (a fixed convolution), the codebook holds 64 colours (a 4x4x4 RGB grid) and each
patch becomes the index of its nearest colour; the decoder paints the patches back. Replace it with your model:
all the zoo needs is `encode(images) -> indices` and `decode(indices) -> images`.

    zoo eval -m examples/my_tokenizer.py:build,default --data examples/ -o my-report
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import zoo
import zoo.eval
import zoo.images


class PaletteVQ(nn.Module):
    """Images ``[B, 3, 256, 256]`` in [0, 1] <-> indices ``[B, 32, 32]`` into a 64-colour codebook."""

    def __init__(self, patch: int = 8, levels: int = 4) -> None:
        super().__init__()
        self.patch = patch
        grid = (torch.arange(levels, dtype=torch.float32) + 0.5) / levels
        r, g, b = torch.meshgrid(grid, grid, grid, indexing="ij")
        self.codebook = nn.Parameter(torch.stack([r, g, b], dim=-1).reshape(-1, 3))  # [64, 3]

    # the differentiable path: latents -> (indices, straight-through quantized latents) -> images
    def encode_latents(self, images: Tensor) -> Tensor:
        return F.avg_pool2d(images, self.patch)  # [B, 3, 32, 32]

    def quantize(self, latents: Tensor) -> tuple[Tensor, Tensor]:
        flat = latents.permute(0, 2, 3, 1)  # [B, h, w, 3]
        indices = torch.cdist(flat.reshape(-1, 3), self.codebook).argmin(dim=1).reshape(flat.shape[:-1])
        z_q = self.codebook[indices].permute(0, 3, 1, 2)
        return indices, z_q.detach() + (latents - latents.detach())  # the code vectors, straight-through

    def decode_latents(self, quantized: Tensor) -> Tensor:
        return F.interpolate(quantized, scale_factor=self.patch, mode="nearest")

    # what zoo.wrap calls
    def encode(self, images: Tensor) -> Tensor:
        return self.quantize(self.encode_latents(images))[0]

    def decode(self, indices: Tensor) -> Tensor:
        return self.decode_latents(self.codebook[indices].permute(0, 3, 1, 2))


def build() -> zoo.Tokenizer:
    """What `zoo eval -m examples/my_tokenizer.py:build` calls: your model behind the zoo's interface."""
    model = PaletteVQ()
    return zoo.wrap(model, encode=model.encode, decode=model.decode, image_size=256, codebook_size=64,
                    name="palette-vq", encode_latents=model.encode_latents, quantize=model.quantize,
                    decode_latents=model.decode_latents)


if __name__ == "__main__":
    tok = build()
    images = zoo.images.load_images(["examples/coffee.jpg"], size=256)
    codes = tok.encode(images)  # zoo.Codes: indices [1, 1024, 1], grid (32, 32)
    print(tok.spec.max_tokens, "tokens,", codes.bits().item() / 8, "bytes per image")
    print("PSNR", zoo.eval.metrics.psnr((images * 255).round(), (tok.reconstruct(images) * 255).round()).item())
