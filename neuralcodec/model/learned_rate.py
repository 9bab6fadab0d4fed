"""Model v2: integer latents with a learned rate, one model for every quality."""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .codec_model import MotionCodecBase, to_levels
from .config import ModelConfig
from .entropy import EntropyTables
from .hyperprior import HyperPrior, ste_round


# The rate-distortion trade-off of the lowest and highest quality: quality index q was trained on
# bits per pixel + lambda_q x MSE (of 8-bit levels), lambda_q log-spaced between these x 255^2 (training.train_v2).
LAM_LO, LAM_HI = 0.0001, 0.03


def quality_lambdas(qualities: int, lo: float = LAM_LO, hi: float = LAM_HI) -> torch.Tensor:
    """lambda of every quality index (float64): the weight of the MSE (of [0, 1] images) against bits per pixel,
    log-spaced from lo to hi, x 255^2."""
    return torch.logspace(math.log10(lo), math.log10(hi), qualities, dtype=torch.float64) * 255 ** 2


@dataclass
class FrameLatents:
    """What one frame is coded to: y (1, D, h, w) and z (1, Z, h/4, w/4), int64, at quality index gain."""

    y: torch.Tensor
    z: torch.Tensor
    gain: int


class LearnedRateModel(MotionCodecBase):
    """Integer latents (the finite-scalar form of the VQ-VAE) under a hyperprior, trained on rate + lambda x
    distortion; a quality q selects a row of per-channel gains, so one model spans every rate.

        I:  x ──► i_enc ──► y ──► × gain_i[q] ──► round ──► y_int ──► ÷ gain_i[q] ──► i_dec ──► + 0.5 ──► x_hat
        P:  x, ref ──► motion (encoder only) ──► mv ──► warp(ref, mv) = warped
            x - warped ──► p_enc ──► × gain_p[q] ──► round ──► y_int ──► ÷ gain_p[q] ──► p_dec(·, p_ctx(warped))
                                                                                       ──► + warped ──► x_hat
        side:  y × gain ──► hyper.analysis ──► round ──► z_int ──► hyper (integer-exact; P: + previous y_int)
                                                                 ──► scale index of each element of y_int

    `forward` runs a clip for training (straight-through rounding for the decoders, uniform noise for the rate)
    and returns its reconstruction and estimated bits; `encode_frame` / `decode_frame` are the inference path,
    integers out and in; `scale_index` is the exact integer network whose output, with the frozen tables in
    `entropy`, is all the entropy coder needs. The model itself knows no bytes (neuralcodec.coding)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        d, q = cfg.latent_dim, cfg.qualities
        # log gains per quality and channel; the highest quality (the last row) has the largest gains
        ramp = torch.linspace(math.log(0.5), math.log(12.5), q)[:, None]
        self.gain_i = nn.Parameter(ramp.repeat(1, d).clone())
        self.gain_p = nn.Parameter(ramp.repeat(1, d).clone())
        self.hyper_i = HyperPrior(d, cfg.hyper_channels, cfg.hyper_dim, with_prev=False)
        self.hyper_p = HyperPrior(d, cfg.hyper_channels, cfg.hyper_dim, with_prev=True)
        self.entropy = EntropyTables()

    def _gain(self, intra: bool, q: torch.Tensor) -> torch.Tensor:
        """Per-sample gains (B, D, 1, 1) for quality indexes q (B,) in 0 .. qualities - 1."""
        return (self.gain_i if intra else self.gain_p)[q].exp()[:, :, None, None]

    def hyper(self, intra: bool) -> HyperPrior:
        return self.hyper_i if intra else self.hyper_p

    def lam(self, q: int) -> float:
        """lambda of quality index q: the weight of the MSE against bits per pixel that it was trained with."""
        return float(quality_lambdas(self.cfg.qualities)[q])

    # inference: integers out and in ---------------------------------------------
    def analysis(self, x: torch.Tensor, warped: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's float latent of x (I-frame: warped None) or of its residual x - warped (P-frame)."""
        return (self.i_enc(x) if warped is None else self.p_enc(x - warped)).float()

    @torch.no_grad()
    def quantize(self, y: torch.Tensor, q: int, intra: bool) -> FrameLatents:
        """A latent from `analysis` at quality index q -> its integers (y and the side latent z)."""
        ys = y.float() * self._gain(intra, torch.tensor([q]))
        z = torch.round(self.hyper(intra).side_latent(ys).float())
        return FrameLatents(torch.round(ys).long(), z.long(), q)

    def encode_frame(self, x: torch.Tensor, q: int, warped: torch.Tensor | None = None) -> FrameLatents:
        return self.quantize(self.analysis(x, warped), q, warped is None)

    @torch.no_grad()
    def scale_index(self, z: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        """Exact int64 scale indexes of y from integer z (I-frame: prev None) or z and the previous frame's y."""
        return self.hyper(prev is None).index_exact(z, prev)

    def decode_frame(self, y: torch.Tensor, q: int, warped: torch.Tensor | None = None) -> torch.Tensor:
        """Integers y at quality index q -> the frame (unclamped float); P-frames on their prediction warped."""
        return self.synthesis(y.float() / self._gain(warped is None, torch.tensor([q])), warped)

    def refine(self, x: torch.Tensor, y: torch.Tensor, q: int, warped: torch.Tensor | None, prev: torch.Tensor | None,
               steps: int, lr: float = 0.05) -> Iterator[torch.Tensor]:
        """Encoder-side search for a frame's latent (the slow presets): candidate latents, first the encoder's own
        y, then y after each of `steps` Adam steps on bits per pixel + lambda_q x MSE of x, both taken through the
        rounding straight through (rate from the hyperprior, P-frames with prev, the previous frame's integers,
        as context). The amortized encoder's latent is a guess, the decoder and the entropy model are the judges;
        the caller quantizes the candidates and picks by their coded size and decoded error."""
        intra = warped is None
        g = self._gain(intra, torch.tensor([q])).detach()
        hyper, lam, npix = self.hyper(intra), self.lam(q), x.shape[-1] * x.shape[-2]
        with torch.no_grad():     # the prediction's features do not change with the latent: once, not per step
            ctx = None if intra else self.p_ctx(warped)
        ys = (y.detach().float() * g).clone().requires_grad_(True)
        opt = torch.optim.Adam([ys], lr=lr)
        for k in range(steps + 1):
            yield ys.detach() / g
            if k == steps:
                break
            with torch.enable_grad():
                _, y_lik, z_lik = hyper.likelihoods(ys, prev, noise=False)
                recon = self.synthesis(ste_round(ys) / g, warped, ctx)
                bits = -(y_lik.log2().sum() + z_lik.log2().sum())
                loss = bits / npix + lam * (recon - x).pow(2).mean()
                (ys.grad,) = torch.autograd.grad(loss, [ys])
            opt.step()

    def synthesis(self, yq: torch.Tensor, warped: torch.Tensor | None = None,
                  ctx: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """A dequantized latent -> the frame: the I decoder, or the P decoder on (and added to) its prediction
        (ctx: p_ctx(warped) when the caller has it)."""
        if warped is None:
            return self.i_dec(yq).float() + 0.5
        return warped + self.p_dec(yq, self.p_ctx(warped) if ctx is None else ctx).float()

    # training -------------------------------------------------------------------
    def _code(self, y: torch.Tensor, q: torch.Tensor, intra: bool, prev: torch.Tensor | None):
        g = self._gain(intra, q)
        ys = y.float() * g
        _, y_lik, z_lik = self.hyper(intra).likelihoods(ys, prev, noise=self.training)
        bits = -(y_lik.log2().sum((1, 2, 3)) + z_lik.log2().sum((1, 2, 3)))
        y_int = torch.round(ys)
        y_dec = ys + (y_int - ys).detach() if self.training else y_int
        return y_dec / g, bits, y_int.detach()

    def forward(self, clip: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Code a clip (B, T, 3, H, W) at quality indexes q (B,): frame 0 as I, the rest as P on the previous
        reconstruction. Returns (reconstructions (B, T, 3, H, W), estimated bits of every frame (B,))."""
        frame = lambda t: clip[:, t].contiguous(memory_format=torch.channels_last)  # noqa: E731
        yq, bits, prev = self._code(self.i_enc(frame(0)), q, True, None)
        xhat = self.synthesis(yq)
        recons = [xhat]
        for t in range(1, clip.shape[1]):
            x = frame(t)
            ref = xhat.detach().clamp(0, 1) if self.training else to_levels(xhat)
            with torch.no_grad():
                warped = self.warp(ref, self.motion(x, ref))
            yq, b, prev = self._code(self.p_enc(x - warped), q, False, prev)
            xhat = self.synthesis(yq, warped)
            bits = bits + b
            recons.append(xhat)
        return torch.stack(recons, 1), bits
