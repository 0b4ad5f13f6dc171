"""Loss terms as small modules: pixel, hinge GAN, LeCam, adaptive GAN weight, codebook entropy.

Images are float ``[B, 3, H, W]`` in [0, 1]; discriminator logits are any shape ``[B, ...]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PixelLoss(nn.Module):
    """Unweighted pixel terms on raw reconstructions (not clamped: gradients stay alive); the trainer weights them.

    ``l1``: mean |x - y|; ``l2``: mean (x - y)²; ``colour``: mean (pool(x) - pool(y))², the squared error of
    ``colour_pool``×``colour_pool`` block means. The colour term is the low-frequency part of l2 on its own: a
    colour cast that costs little PSNR (a few 1/255 over a whole photo) is a large share of it, so weighting it
    keeps the mean colour of each region right where l2 alone trades it for detail.
    """

    def __init__(self, l1: float = 0.0, l2: float = 1.0, colour: float = 0.0, colour_pool: int = 16) -> None:
        super().__init__()
        self.l1, self.l2, self.colour, self.colour_pool = l1, l2, colour, colour_pool

    def forward(self, recon: Tensor, target: Tensor) -> dict[str, Tensor]:
        out = {}
        recon, target = recon.float(), target.float()
        if self.l1:
            out["l1"] = F.l1_loss(recon, target)
        if self.l2:
            out["l2"] = F.mse_loss(recon, target)
        if self.colour:
            k = min(self.colour_pool, *recon.shape[-2:])
            out["colour"] = F.mse_loss(F.avg_pool2d(recon, k, ceil_mode=True), F.avg_pool2d(target, k, ceil_mode=True))
        return out


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Discriminator hinge loss: ``mean relu(1 - D(x)) + mean relu(1 + D(x̂))``, halved as in taming/MaskGIT."""
    return 0.5 * (F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean())


def hinge_g_loss(logits_fake: Tensor) -> Tensor:
    """Generator hinge loss: ``-mean D(x̂)``."""
    return -logits_fake.float().mean()


class LeCam(nn.Module):
    """LeCam regularisation (Tseng et al., 2021) with EMAs of the mean real and fake logits (buffers, checkpointed).

    ``loss = mean relu(D(x) - ema_fake)² + mean relu(ema_real - D(x̂))²``.
    """

    def __init__(self, decay: float = 0.999) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("ema_real", torch.zeros(()))
        self.register_buffer("ema_fake", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, logits_real: Tensor, logits_fake: Tensor) -> None:
        real, fake = logits_real.float().mean(), logits_fake.float().mean()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            both = torch.stack([real, fake])
            torch.distributed.all_reduce(both)
            real, fake = both / torch.distributed.get_world_size()
        if not bool(self.initialised):
            self.ema_real.copy_(real)
            self.ema_fake.copy_(fake)
            self.initialised.fill_(True)
        else:
            self.ema_real.mul_(self.decay).add_(real, alpha=1 - self.decay)
            self.ema_fake.mul_(self.decay).add_(fake, alpha=1 - self.decay)

    def forward(self, logits_real: Tensor, logits_fake: Tensor) -> Tensor:
        return (F.relu(logits_real.float() - self.ema_fake).pow(2).mean()
                + F.relu(self.ema_real - logits_fake.float()).pow(2).mean())


def adaptive_gan_weight(nll: Tensor, g_loss: Tensor, last_layer: Tensor, lo: float = 0.0,
                        hi: float = 1e4) -> Tensor:
    """Taming's adaptive weight ``||∇_w NLL|| / (||∇_w G|| + 1e-4)`` at the decoder's last layer `w`, clamped.

    Detached: it scales the GAN term, it is not trained. Falls back to 1 when either loss does not reach `w`.
    """
    try:
        g_nll = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
        g_gan = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    except RuntimeError:  # e.g. the layer is frozen in this stage
        return torch.ones((), device=nll.device)
    weight = g_nll.float().norm() / (g_gan.float().norm() + 1e-4)
    return weight.clamp(lo, hi).detach()


def entropy_loss(z: Tensor, codebook: Tensor, temperature: float = 0.01) -> Tensor:
    """MaskGIT/LlamaGen codebook entropy loss on the soft assignment of ``z [N, D]`` to ``codebook [K, D]``.

    ``mean_n H(p_n) - H(mean_n p_n)`` with ``p_n = softmax(-||z_n - e_k||² / temperature)``: each vector commits to
    a code (low per-sample entropy) while the batch spreads over the codebook (high average entropy).
    """
    z, e = z.float().reshape(-1, codebook.shape[-1]), codebook.float()
    d = z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * z @ e.t()
    logp = F.log_softmax(-d / temperature, dim=-1)
    p = logp.exp()
    per_sample = -(p * logp).sum(-1).mean()
    avg = p.mean(0)
    codebook_entropy = -(avg * torch.log(avg + 1e-5)).sum()
    return per_sample - codebook_entropy


def clip_contrastive_loss(image_features: Tensor, text_features: Tensor, logit_scale: Tensor) -> Tensor:
    """open_clip's `ClipLoss` with ``local_loss=True, gather_with_grad=True``.

    image_features, text_features: normalised ``[B, D]`` of this process; logit_scale: the exponentiated scale.
    Each process scores its own B images against every process's texts (and its texts against every image), so
    the labels are this process's slice ``rank·B + arange(B)``; gathering keeps gradients (all_gather with
    autograd), and the mean over processes equals the loss of one process holding the global batch.

    Kept rather than importing `open_clip.loss.ClipLoss` (same math, checked by tests/test_train_unitok.py): the
    logits go to float32 before the cross-entropy (bf16 runs without autocast), and the generic trainer does not
    need the optional `[unitok]` extra.
    """
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if world > 1:
        from torch.distributed.nn.functional import all_gather

        all_images = torch.cat(all_gather(image_features), dim=0)
        all_texts = torch.cat(all_gather(text_features), dim=0)
        rank = dist.get_rank()
    else:
        all_images, all_texts, rank = image_features, text_features, 0
    logits_per_image = logit_scale * image_features @ all_texts.t()
    logits_per_text = logit_scale * text_features @ all_images.t()
    labels = torch.arange(image_features.shape[0], device=image_features.device) + rank * image_features.shape[0]
    return (F.cross_entropy(logits_per_image.float(), labels) + F.cross_entropy(logits_per_text.float(), labels)) / 2
