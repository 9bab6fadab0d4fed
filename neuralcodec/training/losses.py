"""Training losses: MS-SSIM (per image, differentiable) and the adversarial loss object owning the discriminator."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363)  # first four standard scales, renormalised
_SSIM_FLOOR = 1e-4   # contrast-structure terms are floored before the fractional powers (see _ms_ssim)


def _blur_matrix(n: int, g: torch.Tensor) -> torch.Tensor:
    """(n, n - len(g) + 1): t @ M is t's valid correlation with the window g along its last axis."""
    i = torch.arange(n, device=g.device)[:, None] - torch.arange(n - len(g) + 1, device=g.device)[None]
    return torch.where((i >= 0) & (i < len(g)), g[i.clamp(0, len(g) - 1)], g.new_zeros(()))


def _ms_ssim(x: torch.Tensor, y: torch.Tensor, win: int, weights: tuple[float, ...]) -> torch.Tensor:
    """MS-SSIM (Gaussian window of sigma 1.5, data range 1) of image batches (N, C, H, W) per image and channel
    (N, C), with one scale per weight (one weight: plain SSIM). Each scale's term is floored at _SSIM_FLOOR before
    its power: a poor reconstruction's negative contrast-structure term made pytorch-msssim's relu-then-power give
    0 x inf = NaN gradients (which ended a training run). The window's separable blur is two matrix products with
    banded matrices, one call for the five moments: on two CPU cores forward and backward take half the time of
    depthwise convolutions (75 against 160 ms for a training batch of 15 frames of 160 x 160 pixels)."""
    c = x.shape[1]
    g = torch.exp(-(torch.arange(win, dtype=torch.float32, device=x.device) - win // 2) ** 2 / (2 * 1.5 ** 2))
    g = (g / g.sum()).to(x.dtype)
    w = torch.tensor(weights, dtype=x.dtype, device=x.device)
    w = w / w.sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    out = x.new_ones(x.shape[:2])
    for i in range(len(weights)):
        if i:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        h, wd = x.shape[-2:]
        moments = _blur_matrix(h, g).t() @ (torch.cat([x, y, x * x, y * y, x * y], 1) @ _blur_matrix(wd, g))
        mx, my, exx, eyy, exy = moments.split(c, 1)
        sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
        cs = (2 * sxy + c2) / (sxx + syy + c2)
        term = cs if i < len(weights) - 1 else cs * (2 * mx * my + c1) / (mx * mx + my * my + c1)
        out = out * term.mean((-2, -1)).clamp(min=_SSIM_FLOOR) ** w[i]
    return out


def msssim_per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM (N,) of image batches (N, C, H, W) in [0, 1] (x is clamped), averaged over channels, with 4
    scales; the window shrinks (7, 5, 3) for small crops, then plain SSIM."""
    side = min(x.shape[-2:])
    win = next((k for k in (7, 5, 3) if side > (k - 1) * 16), None)
    if win is None:
        return _ms_ssim(x.clamp(0, 1), y, min(3, side - (side + 1) % 2), (1.0,)).mean(1)
    return _ms_ssim(x.clamp(0, 1), y, win, MS_SSIM_WEIGHTS).mean(1)


def msssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of two image batches (N, C, H, W) in [0, 1], averaged over the batch (msssim_per_image)."""
    return msssim_per_image(x, y).mean()


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (as in pix2pix/taming): per-patch real/fake logits and intermediate features."""

    def __init__(self, ch: int = 32, layers: int = 3):
        super().__init__()
        blocks, cin = [], 3
        for i in range(layers):
            cout = ch * 2 ** i
            blocks.append(nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1),
                                        nn.GroupNorm(8, cout) if i else nn.Identity(),
                                        nn.LeakyReLU(0.2, inplace=True)))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return self.head(x), feats


def adopt_weight(weight: float, step: int, start: int) -> float:
    """Zero before `start` (the GAN warm-up), `weight` after."""
    return weight if step >= start else 0.0


class AdversarialLoss(nn.Module):
    """Owns the discriminator and its optimizer: hinge loss, feature matching and an adaptive generator weight."""

    def __init__(self, weight: float = 0.1, feat_weight: float = 1.0, lr: float = 2e-4, start: int = 0,
                 disc: nn.Module | None = None):
        super().__init__()
        self.weight, self.feat_weight, self.start = weight, feat_weight, start
        self.disc = disc if disc is not None else PatchDiscriminator()
        self.optimizer = torch.optim.Adam(self.disc.parameters(), lr=lr, betas=(0.5, 0.9))

    def active(self, step: int) -> bool:
        return adopt_weight(self.weight, step, self.start) > 0

    def train_adv(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
        """One discriminator step (hinge loss) on detached fakes."""
        self.optimizer.zero_grad(set_to_none=True)
        logits_real, _ = self.disc(real.detach())
        logits_fake, _ = self.disc(fake.detach())
        loss = 0.5 * (F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean())
        loss.backward()
        self.optimizer.step()
        return {"d_loss": float(loss), "d_real": float(logits_real.mean()), "d_fake": float(logits_fake.mean())}

    def forward(self, fake: torch.Tensor, real: torch.Tensor, rec_loss: torch.Tensor,
                last_layer: torch.Tensor, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Generator loss: adaptive-weighted hinge term plus discriminator feature matching."""
        base = adopt_weight(self.weight, step, self.start)
        if base == 0:
            return fake.new_zeros(()), {}
        for p in self.disc.parameters():
            p.requires_grad_(False)
        logits_fake, feats_fake = self.disc(fake)
        with torch.no_grad():
            _, feats_real = self.disc(real)
        for p in self.disc.parameters():
            p.requires_grad_(True)
        g_loss = -logits_fake.mean()
        fm = sum(F.l1_loss(a, b) for a, b in zip(feats_fake, feats_real)) / len(feats_fake)
        g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
        g_gan = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        d_weight = (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0, 1e4).detach() * base
        loss = d_weight * g_loss + self.feat_weight * base * fm
        return loss, {"g_loss": float(g_loss), "feat_match": float(fm), "d_weight": float(d_weight)}
