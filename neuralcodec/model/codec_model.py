"""The video codec network: learned-rate I-frames and motion-compensated conditional P-frames.

Data flow of one frame (integers cross the dashed line; everything above it runs only in the encoder)::

    x ──► Enc (I: x; P: [x, warp(ref, mv)]) ──► y ──× gain[q] ──► y_g ──► HyperAnalysis ──► z
                                                                          │                 │ round, clamp
    - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - ┼ - - - - - - - - ▼ - - - - - -
                                                                          │      z ──► IntHyperSynthesis(z, q,
                                                                          │            previous y_hat) ──► (scale
                                                                          ▼            index, mean)  [integers]
                                                 symbols = round(y_g - mean) ──► y_hat = symbols + mean
    x_hat ◄── Dec (I: y_hat × inv_gain[q]; P: + context of warp(ref, mv), added to the warped frame) ◄──┘

z is coded with a factorized prior (one frozen table per channel); each symbol of y with the Gaussian table its
scale index selects. Both the indexes and the means come from the integer network, so the parse is identical
on every machine; only the float synthesis may differ by a rounding. `forward` trains with additive noise for
the rate and straight-through rounding for the decoder input; `encode_frame`/`frame_params`/`decode_frame`
are the inference path (integer tensors in and out, no bytes: see neuralcodec/coding).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .entropy import FactorizedPrior, gaussian_likelihood
from .intnet import IntHyperSynthesis, ste_round
from .motion import block_warp, estimate_motion
from .transforms import ContextNet, Decoder, Encoder, HyperAnalysis


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8-bit levels, as the decoder's output frame is."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def quantize(v: torch.Tensor) -> torch.Tensor:
    """Round half up (the encoder's rounding of latents; any rounding would decode, this one is fixed)."""
    return torch.floor(v + 0.5)


@dataclass
class FrameCode:
    """The integers of one coded frame (batch B; the codec uses B = 1)."""

    intra: bool
    quality: torch.Tensor           # (B,) int64, 0-based quality index
    mv: torch.Tensor | None         # (B, 2, bh, bw) int64 quarter pels; None for I-frames
    z: torch.Tensor                 # (B, hyper_dim, hz, wz) int64 in [-z_max, z_max]
    y: torch.Tensor                 # (B, latent_dim, h, w) int64 symbols round(y_g - mean), |.| <= y_max


@dataclass
class FrameParams:
    """What the integer hyper-synthesis gives the entropy coder for y."""

    scale_index: torch.Tensor       # (B, latent_dim, h, w) int64 in [0, scale_levels)
    mean: torch.Tensor              # (B, latent_dim, h, w) float32, multiples of 1 / mean_steps


@dataclass
class ForwardOutput:
    """Training/evaluation pass over a clip."""

    recon: torch.Tensor             # (B, T, 3, H, W), unclamped in training
    bits_y: torch.Tensor            # (B, T) estimated bits of y
    bits_z: torch.Tensor            # (B, T) estimated bits of z
    codes: list[FrameCode]          # eval mode only (empty in training)


class VideoCodecModel(nn.Module):
    """I-frames: x -> Enc -> y -> hyperprior -> Dec. P-frames: conditional on the motion-warped reference."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        m, q = cfg.latent_dim, cfg.num_qualities
        self.i_enc, self.p_enc = Encoder(3, cfg), Encoder(6, cfg)
        self.i_dec, self.p_dec, self.p_ctx = Decoder(cfg), Decoder(cfg), ContextNet(cfg)
        self.i_hyper_a, self.p_hyper_a = HyperAnalysis(cfg), HyperAnalysis(cfg)
        self.i_hyper_s, self.p_hyper_s = IntHyperSynthesis(cfg, False), IntHyperSynthesis(cfg, True)
        self.i_zprior, self.p_zprior = FactorizedPrior(cfg.hyper_dim), FactorizedPrior(cfg.hyper_dim)
        # per frame type, quality and channel: y is multiplied by gain before rounding, by inv_gain after
        init = torch.linspace(-2.0, 1.5, q) * math.log(2)
        self.log_gain = nn.Parameter(init.view(1, q, 1).repeat(2, 1, m))
        self.log_inv_gain = nn.Parameter(-init.view(1, q, 1).repeat(2, 1, m))
        self.register_buffer("cdf", torch.zeros(0, 0, dtype=torch.int32))   # frozen CDF tables (see coding)
        self.autocast = False      # bf16 autocast of the float transforms (training on CPUs with BF16)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # the table buffer is sized at export
        key = prefix + "cdf"
        if key in state_dict:
            self.cdf = torch.zeros_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # pieces shared by training and inference ---------------------------------------------------------------
    @property
    def mv_limit(self) -> int:
        """Largest motion component in quarter pels; decoded vectors are clamped to it too."""
        return 4 * (self.cfg.search_range + self.cfg.block_size)

    def motion(self, x: torch.Tensor, ref: torch.Tensor, search: int | None = None, finest: int = 1,
               repeat: int = 1) -> torch.Tensor:
        """Block vectors of x from ref; `search` (pixels) never beyond cfg.search_range (see mv_limit)."""
        search = self.cfg.search_range if search is None else min(search, self.cfg.search_range)
        mv = estimate_motion(x, ref, self.cfg.block_size, search, finest=finest, repeat=repeat)
        return mv.clamp(-self.mv_limit, self.mv_limit)

    def warp(self, ref: torch.Tensor, mv: torch.Tensor) -> torch.Tensor:
        return block_warp(ref, mv, self.cfg.block_size)

    def _amp(self):
        if self.autocast:
            return torch.autocast("cuda" if self.log_gain.is_cuda else "cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _gain(self, intra: bool, q: torch.Tensor, inverse: bool = False) -> torch.Tensor:
        table = self.log_inv_gain if inverse else self.log_gain
        return torch.exp(table[0 if intra else 1, q])[:, :, None, None]

    def analyse(self, intra: bool, x: torch.Tensor, q: torch.Tensor, warped: torch.Tensor | None) -> torch.Tensor:
        """The gained latent y_g (float32)."""
        with self._amp():
            y = self.i_enc(x) if intra else self.p_enc(torch.cat([x, warped], 1))
        return y.float() * self._gain(intra, q)

    def side(self, intra: bool, y_g: torch.Tensor) -> torch.Tensor:
        """Continuous z from y_g (padded to a multiple of 4 latent positions)."""
        h, w = y_g.shape[-2:]
        y_pad = F.pad(y_g, (0, (-w) % 4, 0, (-h) % 4), mode="replicate") if (h % 4 or w % 4) else y_g
        return (self.i_hyper_a if intra else self.p_hyper_a)(y_pad)

    def synthesise(self, intra: bool, y_hat: torch.Tensor, q: torch.Tensor,
                   warped: torch.Tensor | None) -> torch.Tensor:
        y = y_hat * self._gain(intra, q, inverse=True)
        with self._amp():
            out = self.i_dec(y) + 0.5 if intra else warped + self.p_dec(y, self.p_ctx(warped))
        return out.float()

    def scales(self, index: torch.Tensor) -> torch.Tensor:
        """Gaussian scale of a (possibly straight-through continuous) scale index."""
        c = self.cfg
        step = (math.log(c.scale_max) - math.log(c.scale_min)) / (c.scale_levels - 1)
        return torch.exp(math.log(c.scale_min) + index * step)

    # inference: integers in, integers out --------------------------------------------------------------------
    @torch.no_grad()
    def frame_params(self, intra: bool, z: torch.Tensor, q: torch.Tensor, shape: tuple[int, int],
                     prev: torch.Tensor | None) -> FrameParams:
        """Scale indexes and means of y from integers only (exact integer network)."""
        hs = self.i_hyper_s if intra else self.p_hyper_s
        idx, mean = hs.exact(z, q, shape, None if intra else prev)
        return FrameParams(idx, mean)

    @torch.no_grad()
    def encode_frame(self, x: torch.Tensor, q: torch.Tensor, ref: torch.Tensor | None = None,
                     prev: torch.Tensor | None = None, mv: torch.Tensor | None = None) -> tuple[FrameCode, FrameParams]:
        """Code x (B, 3, H, W), H and W multiples of cfg.align: an I-frame when ref is None, else a P-frame."""
        c = self.cfg
        intra = ref is None
        warped = None
        if not intra:
            mv = self.motion(x, ref) if mv is None else mv
            warped = self.warp(ref, mv)
        y_g = self.analyse(intra, x, q, warped)
        z = quantize(self.side(intra, y_g)).clamp(-c.z_max, c.z_max)
        params = self.frame_params(intra, z, q, y_g.shape[-2:], prev)
        y = quantize(y_g - params.mean).clamp(-c.y_max, c.y_max)
        return FrameCode(intra, q, None if intra else mv.long(), z.long(), y.long()), params

    @torch.no_grad()
    def decode_frame(self, code: FrameCode, params: FrameParams,
                     ref: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_hat unclamped, y_hat) from the frame's integers; ref is the previous decoded frame for P."""
        y_hat = code.y.float() + params.mean
        warped = None if code.intra else self.warp(ref, code.mv)
        return self.synthesise(code.intra, y_hat, code.quality, warped), y_hat

    # encoder-side rate-distortion search (presets) ---------------------------------------------------------------
    def frame_bits(self, code: FrameCode, params: FrameParams) -> torch.Tensor:
        """Estimated bits (B,) of z and y from the same distributions as the coder's tables (motion excluded)."""
        lik_y = gaussian_likelihood(code.y.float() + params.mean, params.mean,
                                    self.scales(params.scale_index.float()))
        lik_z = (self.i_zprior if code.intra else self.p_zprior).likelihood(code.z.float())
        return -torch.log2(lik_y).sum((1, 2, 3)) - torch.log2(lik_z).sum((1, 2, 3))

    @torch.no_grad()
    def rd_cost(self, x: torch.Tensor, code: FrameCode, params: FrameParams, ref: torch.Tensor | None,
                lam: float) -> float:
        """bits + lam * 255^2 * SSE of the real decode (8-bit levels): the training objective of one frame (MSE
        term), summed over its pixels, for the actual integers."""
        xhat, _ = self.decode_frame(code, params, ref)
        sse = float((to_levels(xhat) - x).pow(2).sum()) / x.shape[1]
        return float(self.frame_bits(code, params).sum()) + lam * 255 ** 2 * sse

    def refine(self, x: torch.Tensor, code: FrameCode, params: FrameParams, ref: torch.Tensor | None,
               steps: int, lam: float, lr: float = 0.25) -> tuple[FrameCode, FrameParams]:
        """Gradient steps on the continuous latent y_g against bits + lam * 255^2 * SSE with z (so the scale
        indexes and means) kept fixed; straight-through rounding, Adam with a decaying step. Returns the code
        with the best real cost (actual rounded symbols, real decode), never worse than the given one.

        Deterministic: no noise. The decoder is the float synthesis in fp32 (autocast off).
        """
        if steps <= 0:
            return code, params
        c = self.cfg
        intra = code.intra
        with torch.no_grad():
            warped = None if intra else self.warp(ref, code.mv)
        mean, scale = params.mean.clone(), self.scales(params.scale_index.float()).clone()
        x = x.clone()
        pixels = x.shape[-1] * x.shape[-2]
        best_cost, best_y = math.inf, code.y
        autocast, self.autocast = self.autocast, False
        try:
            with torch.enable_grad():
                var = (code.y.float() + mean).requires_grad_(True)
                opt = torch.optim.Adam([var], lr=lr)
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
                for step in range(steps + 1):   # the forward of step k measures the symbols after k updates
                    sym = ste_round(var - mean).clamp(-c.y_max, c.y_max)
                    y_hat = sym + mean
                    bits = -torch.log2(gaussian_likelihood(y_hat, mean, scale)).sum()
                    xhat = self.synthesise(intra, y_hat, code.quality, warped)
                    with torch.no_grad():  # the real cost of these symbols: decoded to 8-bit levels
                        real = float(bits) + lam * 255 ** 2 * float((to_levels(xhat) - x).pow(2).sum()) / x.shape[1]
                    if real < best_cost:
                        best_cost, best_y = real, sym.detach().long()
                    if step == steps:
                        break
                    sse = (xhat.clamp(0, 1) - x).pow(2).sum() / x.shape[1]
                    loss = (bits + lam * 255 ** 2 * sse) / pixels
                    opt.zero_grad(set_to_none=True)
                    var.grad, = torch.autograd.grad(loss, [var])
                    opt.step()
                    sched.step()
        finally:
            self.autocast = autocast
        return FrameCode(intra, code.quality, code.mv, code.z, best_y), params

    # training ----------------------------------------------------------------------------------------------
    def forward(self, clip: torch.Tensor, q: torch.Tensor, intra_grad: bool = True) -> ForwardOutput:
        """Code a clip (B, T, 3, H, W) at qualities q (B,): frame 0 as I, the rest as P on the previous output.

        Training: noisy latents for the rate, straight-through rounding into the decoder. Eval: exactly the
        inference path (encode_frame, then decode_frame), with the rate the coder's distributions give.
        intra_grad=False codes the I-frame without gradients (P-frame training on a fixed I-frame coder).
        """
        if not self.training:
            return self._forward_eval(clip, q)
        recons, bits_y, bits_z = [], [], []
        ref = prev = None
        for t in range(clip.shape[1]):
            intra, x = t == 0, clip[:, t]
            with contextlib.nullcontext() if (intra_grad or not intra) else torch.no_grad():
                xhat, b_y, b_z, y_hat = self._train_frame(intra, x, q, ref, prev)
            recons.append(xhat)
            bits_y.append(b_y)
            bits_z.append(b_z)
            ref, prev = xhat.detach().clamp(0, 1), y_hat.detach()
        return ForwardOutput(torch.stack(recons, 1), torch.stack(bits_y, 1), torch.stack(bits_z, 1), [])

    def _train_frame(self, intra: bool, x: torch.Tensor, q: torch.Tensor, ref: torch.Tensor | None,
                     prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame of the training pass: (reconstruction, bits of y, bits of z, y_hat)."""
        c = self.cfg
        warped = None
        if not intra:
            warped = self.warp(ref, self.motion(x, ref))
        y_g = self.analyse(intra, x, q, warped)
        z = self.side(intra, y_g)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_hat = ste_round(z).clamp(-c.z_max, c.z_max)
        lik_z = (self.i_zprior if intra else self.p_zprior).likelihood(z_noisy)
        hs = self.i_hyper_s if intra else self.p_hyper_s
        s_idx, mean = hs(z_hat, q, y_g.shape[-2:], None if intra else prev)
        y_noisy = y_g + torch.empty_like(y_g).uniform_(-0.5, 0.5)
        lik_y = gaussian_likelihood(y_noisy, mean, self.scales(s_idx))
        y_hat = ste_round(y_g - mean).clamp(-c.y_max, c.y_max) + mean
        xhat = self.synthesise(intra, y_hat, q, warped)
        return xhat, -torch.log2(lik_y).sum((1, 2, 3)), -torch.log2(lik_z).sum((1, 2, 3)), y_hat

    @torch.no_grad()
    def _forward_eval(self, clip: torch.Tensor, q: torch.Tensor) -> ForwardOutput:
        recons, bits_y, bits_z, codes = [], [], [], []
        ref = prev = None
        for t in range(clip.shape[1]):
            code, params = self.encode_frame(clip[:, t], q, ref, prev)
            xhat, y_hat = self.decode_frame(code, params, ref)
            lik_y = gaussian_likelihood(y_hat, params.mean, self.scales(params.scale_index.float()))
            lik_z = (self.i_zprior if code.intra else self.p_zprior).likelihood(code.z.float())
            recons.append(xhat)
            bits_y.append(-torch.log2(lik_y).sum((1, 2, 3)))
            bits_z.append(-torch.log2(lik_z).sum((1, 2, 3)))
            codes.append(code)
            ref, prev = to_levels(xhat), y_hat
        return ForwardOutput(torch.stack(recons, 1), torch.stack(bits_y, 1), torch.stack(bits_z, 1), codes)
