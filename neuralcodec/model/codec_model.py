"""The video codec network: intra (I) and motion-compensated conditional inter (P) coding with residual VQ."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from .autoencoder import ContextNet, Decoder, Encoder
from .config import ModelConfig
from .entropy import EntropyTables
from .motion import MOTION_MERGE, block_warp, estimate_motion
from .quantizer import QuantizerOutput, ResidualVQ


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8-bit levels, as the decoder's output frame is."""
    return torch.round(x.clamp(0, 1) * 255) / 255


@dataclass
class ForwardOutput:
    """Training/evaluation pass over a clip."""

    recon: torch.Tensor                      # (B, T, 3, H, W), unclamped in training
    commit_loss: torch.Tensor
    latent_l1: torch.Tensor                  # mean |z| of P-frame latents (rate proxy)
    codes: list[torch.Tensor]                # per frame (B, S, h, w)
    mvs: list[torch.Tensor | None]           # per frame (B, 2, bh, bw) quarter pels, None for I
    latents: list[torch.Tensor]              # per frame (B, D, h, w), before quantization
    metrics: dict[str, float] = field(default_factory=dict)


def _fp32(t: torch.Tensor):
    """Autocast off (float32) inside: motion search and quantization stay exact under bf16 training."""
    return torch.autocast(t.device.type, enabled=False)


class MotionCodecBase(nn.Module):
    """What both model designs share: the I and P transforms at 1/8 resolution (encoders, decoders, the P-frame
    context network) and the encoder-side block motion with its warp. Subclasses add the quantizer and entropy
    model (VideoCodecModel: residual VQ; learned_rate.LearnedRateModel: integer latents under a hyperprior)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.i_enc, self.i_dec = Encoder(3, cfg), Decoder(cfg)
        self.p_enc, self.p_dec, self.p_ctx = Encoder(3, cfg, bias=False), Decoder(cfg), ContextNet(cfg)

    @property
    def mv_limit(self) -> int:
        """Largest motion component in quarter pels; decoded vectors are clamped to it too."""
        return 4 * (self.cfg.search_range + self.cfg.block_size)

    def motion(self, x: torch.Tensor, ref: torch.Tensor, search: int | None = None, finest: int = 1,
               merge: float = MOTION_MERGE) -> torch.Tensor:
        """Block motion of x from ref in quarter pels; `search` (pixels, at most the model's search_range) and
        `finest` (the finest refinement step in quarter pels) trade encode time for prediction quality, `merge`
        (mean absolute luma) prediction quality for motion bits (estimate_motion)."""
        search = self.cfg.search_range if search is None else min(search, self.cfg.search_range)
        with _fp32(x):
            mv = estimate_motion(x.float(), ref.float(), self.cfg.block_size, search, finest=finest, merge=merge,
                                 coding=self.cfg.mv_coding)
        return mv.clamp(-self.mv_limit, self.mv_limit)

    def warp(self, ref: torch.Tensor, mv: torch.Tensor) -> torch.Tensor:
        return block_warp(ref, mv, self.cfg.block_size)


class VideoCodecModel(MotionCodecBase):
    """I-frames: x -> Enc -> RVQ -> Dec. P-frames: residual to the motion-warped reference, decoded with context.

        I:  x ──► i_enc ──► z ──► i_vq.encode ──► codes (S, h, w) ──► i_vq.decode ──► i_dec ──► + 0.5 ──► x_hat
        P:  x, ref ──► motion (encoder only) ──► mv (2, bh, bw) ──► warp(ref, mv) = warped
            x - warped ──► p_enc ──► z ──► p_vq.encode ──► codes ──► p_vq.decode ──► p_dec(·, p_ctx(warped))
                                                                                   ──► + warped ──► x_hat

    `forward` runs a clip for training (straight-through VQ, the losses' inputs); encode_* / decode_* are the
    inference path, integers in and out. The codes and mv are what a frame is coded to; `entropy` holds the frozen
    tables the coding layer (neuralcodec.coding) turns them into bytes with. The model itself knows no bytes."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.i_vq = ResidualVQ(cfg.num_stages, cfg.codebook_size, cfg.latent_dim)
        self.p_vq = ResidualVQ(cfg.num_stages, cfg.codebook_size, cfg.latent_dim)
        self.entropy = EntropyTables()

    def decode_intra(self, codes: torch.Tensor) -> torch.Tensor:
        return self.i_dec(self.i_vq.decode(codes)) + 0.5

    def decode_inter(self, codes: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
        """A P-frame from its codes and its motion-compensated prediction warp(ref, mv)."""
        return warped + self.p_dec(self.p_vq.decode(codes), self.p_ctx(warped))

    def encode_intra(self, x: torch.Tensor, n_stages: int, lam: float = 0.0) -> torch.Tensor:
        return self.i_vq.encode(self.i_enc(x), n_stages, lam)

    def encode_inter(self, x: torch.Tensor, warped: torch.Tensor, n_stages: int, lam: float = 0.0) -> torch.Tensor:
        """The codes of a P-frame: the residual to its motion-compensated prediction warp(ref, motion(x, ref))."""
        return self.p_vq.encode(self.p_enc(x - warped), n_stages, lam)

    # encoder-side refinement (slow presets) ---------------------------------------
    def refine(self, x: torch.Tensor, z: torch.Tensor, vq: ResidualVQ, n_stages: int, lam: float, steps: int,
               warped: torch.Tensor | None = None, lr: float = 0.02,
               distortion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
               rate: Callable[[int, torch.Tensor | None], torch.Tensor] | None = None,
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Candidates (codes, reconstruction) for frame x: those of the encoder's latent z, then after each of
        `steps` Adam steps that move z to lower the decoder's squared error through a straight-through quantizer
        (the decoder sees the codes of vq.encode(z, n_stages, lam, rate)): the amortized encoder's z is a guess,
        and the decoder is the judge (distortion(recon, x), default the squared error). I-frames with warped None, else
        P-frames decoded on the prediction warped. The caller picks among the steps + 1 candidates (see
        coding.FrameCoder)."""
        distortion = distortion or (lambda r, t: (r - t).pow(2).mean())
        with torch.no_grad():
            ctx = None if warped is None else self.p_ctx(warped)
        dec = self.i_dec if warped is None else self.p_dec
        base = 0.5 if warped is None else warped
        z = z.detach().float().clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr * float(z.detach().std().clamp(min=1e-3)))
        for k in range(steps + 1):
            with torch.no_grad():
                codes = vq.encode(z, n_stages, lam, rate)
                q = vq.decode(codes)
            with torch.enable_grad():
                recon = base + dec(z + (q - z).detach(), ctx).float()
                if k < steps:
                    (z.grad,) = torch.autograd.grad(distortion(recon, x), [z])
            yield codes, recon.detach()
            if k < steps:
                opt.step()

    # training -------------------------------------------------------------------
    def _quantize(self, vq: ResidualVQ, z: torch.Tensor, n_stages, bypass: bool, lam: float = 0.0):
        """The quantizer always runs in float32 (nearest codes and codebook updates), autocast or not."""
        z = z.float()
        if not bypass:
            with _fp32(z):
                return vq(z, n_stages, lam)
        return QuantizerOutput(z, torch.zeros(0, dtype=torch.long), z.new_zeros(()), {})

    def forward(self, clip: torch.Tensor, n_stages: torch.Tensor | int | None = None,
                bypass_vq: bool = False, lam_i: float = 0.0, lam_p: float = 0.0) -> ForwardOutput:
        """Code a clip (B, T, 3, H, W): frame 0 as I, the rest as P on the previous reconstruction.

        With bypass_vq the latents go to the decoders unquantized (autoencoder warm-up before k-means init).
        lam_i / lam_p: the encoder's rate-distortion thresholds (eval mode only, see ResidualVQ.encode).
        """
        if n_stages is None:
            n_stages = self.cfg.num_stages
        frame = lambda t: clip[:, t].contiguous(memory_format=torch.channels_last)  # noqa: E731
        z = self.i_enc(frame(0)).float()
        vq = self._quantize(self.i_vq, z, n_stages, bypass_vq, lam_i)
        xhat = self.i_dec(vq.quantized).float() + 0.5
        recons, codes, mvs, latents = [xhat], [vq.codes], [None], [z]
        commit = vq.commit_loss
        latent_l1 = clip.new_zeros(())
        metrics = {f"i_{k}": v for k, v in vq.metrics.items()}
        for t in range(1, clip.shape[1]):
            x = frame(t)
            ref = xhat.detach().clamp(0, 1) if self.training else to_levels(xhat)
            mv = self.motion(x, ref)
            warped = self.warp(ref, mv)
            zp = self.p_enc(x - warped).float()
            vqp = self._quantize(self.p_vq, zp, n_stages, bypass_vq, lam_p)
            xhat = warped + self.p_dec(vqp.quantized, self.p_ctx(warped)).float()
            recons.append(xhat)
            codes.append(vqp.codes)
            mvs.append(mv)
            latents.append(zp)
            commit = commit + vqp.commit_loss
            latent_l1 = latent_l1 + zp.abs().mean() / (clip.shape[1] - 1)
            for k, v in vqp.metrics.items():
                metrics[f"p_{k}"] = v
        return ForwardOutput(torch.stack(recons, 1), commit / clip.shape[1], latent_l1, codes, mvs, latents, metrics)
