"""Run the RD sweep: every clip x codec x rate point -> encode, decode, measure; plus BD-rates."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from eval import anchors, bdrate, metrics, ncodec_runner
from eval.clips import Clip

NCODEC = "ncodec"
REFERENCE = "x264-lowdelay"
ALL_CODECS = (NCODEC, *anchors.ANCHORS)
# Rate-controlled points: ncodec --bitrate and the x264 low-delay reference in ABR, at the same targets (bits per
# pixel of each clip, turned into bits/s); asked for by name, not part of 'all'
ABR = "ncodec-abr"
ABR_REFERENCE = anchors.ABR_SPEC.name
ABR_BPP = (0.05, 0.1, 0.2, 0.35)
ABR_BPP_QUICK = (0.06, 0.2)


@dataclass
class RunConfig:
    """What to run."""

    codecs: tuple[str, ...]
    metrics: tuple[str, ...]
    quick: bool = False
    gop: int | None = None  # None: ncodec's default GOP, used for both ncodec and x264-lowdelay
    model: str | None = None


def parse_codecs(spec: str) -> tuple[str, ...]:
    """'all' or a comma list of codec names -> tuple; ValueError for unknown names."""
    spec = spec.strip().lower()
    if spec == "all":
        return ALL_CODECS
    names = tuple(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    bad = [n for n in names if n not in (*ALL_CODECS, ABR)]
    if bad or not names:
        raise ValueError(f"unknown codec(s) {bad or spec!r}; choose from {', '.join((*ALL_CODECS, ABR))} or 'all'")
    return names


def abr_targets(clip: Clip, quick: bool) -> list[int]:
    """Target bitrates (bits/s) of the rate-controlled points of a clip."""
    t, h, w = clip.shape
    return [int(round(bpp * w * h * float(clip.fps))) for bpp in (ABR_BPP_QUICK if quick else ABR_BPP)]


def default_gop(ncodec=None) -> tuple[int | None, str]:
    """ncodec's default GOP (I-frame period) and where it came from; (None, ...) means: the clip length."""
    if ncodec is not None and getattr(ncodec, "default_gop", None):
        return int(ncodec.default_gop), "ncodec default (codec.default_gop)"
    try:
        from neuralcodec.codec import DEFAULT_GOP

        return int(DEFAULT_GOP), "ncodec default (neuralcodec.codec.DEFAULT_GOP)"
    except (ImportError, AttributeError):
        return None, "clip length (ncodec's default GOP is not available)"


def _point(clip: Clip, codec: str, param: str, value: int, nbytes: int, enc_s: float, dec_s: float,
           decoded: np.ndarray, cfg: RunConfig) -> dict:
    t, h, w = clip.shape
    p = {"clip": clip.name, "codec": codec, "param": param, "value": value}
    p.update(metrics.rate(nbytes, t, w, h, clip.fps))
    p["encode_fps"] = t / enc_s if enc_s > 0 else None
    p["decode_fps"] = t / dec_s if dec_s > 0 else None
    p.update(metrics.compute_metrics(clip.frames, decoded, clip.fps, cfg.metrics))
    return p


def describe_codecs(cfg: RunConfig, ncodec, qualities: list[int], gop_note: str) -> dict[str, dict]:
    """JSON description of every codec in the run: encoder, exact fixed options, sweep, GOP, versions."""
    info: dict[str, dict] = {}
    for name in cfg.codecs:
        if name == ABR:
            bpp = list(ABR_BPP_QUICK if cfg.quick else ABR_BPP)
            info[ABR] = {"kind": "ncodec", **ncodec_runner.describe(ncodec), "sweep": {"target_bpp": bpp},
                         "rate_control": "codec.encode(bitrate=...) (ncodec encode --bitrate), the frame count known",
                         "size_definition": ncodec_runner.SIZE_DEFINITION, "gop": gop_note}
            info[ABR_REFERENCE] = {"kind": "anchor", "encoder": "libx264", "decoder": "h264",
                                   "fixed_options": anchors.abr_options(1000, 0), "sweep": {"target_bpp": bpp},
                                   "gop": f"{anchors.ABR_SPEC.gop_note}; GOP {gop_note}",
                                   "size_definition": anchors.SIZE_DEFINITION, **anchors.library_versions()}
            continue
        if name == NCODEC:
            info[name] = {"kind": "ncodec", **ncodec_runner.describe(ncodec), "sweep": {"quality": qualities},
                          "size_definition": ncodec_runner.SIZE_DEFINITION, "gop": gop_note,
                          "timing": "an untimed warm-up encode+decode of 2 frames runs before each clip"}
            continue
        spec = anchors.ANCHORS[name]
        info[name] = {
            "kind": "anchor", "encoder": spec.encoder, "decoder": anchors.decoder_name(spec), "fixed_options": dict(spec.options),
            "sweep": {"crf": list(spec.quick_crfs if cfg.quick else spec.crfs)},
            "gop": f"{spec.gop_note}; GOP {gop_note}" if spec.low_delay_keyint else spec.gop_note,
            "size_definition": anchors.SIZE_DEFINITION,
            "input": "RGB -> yuv420p by PyAV VideoFrame.reformat (swscale default: BT.601 limited range); "
                     "decoded yuv420p -> RGB the same way",
            "notes": list(spec.notes), **anchors.library_versions()}
    return info


def _rate_error(p: dict, target: int) -> dict:
    p["target_kbps"] = target / 1000
    p["rate_error"] = p["kbps"] * 1000 / target - 1
    return p


def _measure(clip: Clip, codec: str, value: int, gop: int, cfg: RunConfig, ncodec, info: dict) -> dict:
    """Encode + decode + measure one RD point (value: a quality, a CRF, or for ABR codecs a bitrate in bits/s)."""
    if codec == ABR:
        r = ncodec_runner.encode_decode(ncodec, clip.frames, None, clip.fps, gop, bitrate=value)
        p = _point(clip, codec, "bitrate", value, r.nbytes, r.encode_s, r.decode_s, r.decoded, cfg)
        p["stream_header"] = r.header
        return _rate_error(p, value)
    if codec == ABR_REFERENCE:
        r = anchors.encode_decode(clip.frames, anchors.ABR_SPEC, 0, clip.fps, gop, bitrate=value)
        p = _point(clip, codec, "bitrate", value, r.nbytes, r.encode_s, r.decode_s, r.decoded, cfg)
        p["options"] = r.options
        return _rate_error(p, value)
    if codec == NCODEC:
        r = ncodec_runner.encode_decode(ncodec, clip.frames, value, clip.fps, gop)
        p = _point(clip, codec, "quality", value, r.nbytes, r.encode_s, r.decode_s, r.decoded, cfg)
        p["stream_header"] = r.header
        return p
    r = anchors.encode_decode(clip.frames, anchors.ANCHORS[codec], value, clip.fps, gop)
    p = _point(clip, codec, "crf", value, r.nbytes, r.encode_s, r.decode_s, r.decoded, cfg)
    p["options"] = r.options
    p["info_sei_bytes"] = r.info_sei_bytes
    if r.encoder_info:
        info.setdefault("encoder_info", r.encoder_info)
    return p


def run(clips: list[Clip], cfg: RunConfig, progress: bool = True,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Measure all points; returns the results dict (codecs, clips, points, failures, bd_rates)."""
    from tqdm import tqdm

    ncodec = ncodec_runner.load(cfg.model) if NCODEC in cfg.codecs or ABR in cfg.codecs else None
    qualities = ncodec_runner.pick_qualities(ncodec, cfg.quick) if ncodec is not None else []
    gop, gop_source = (cfg.gop, "--gop") if cfg.gop else default_gop(ncodec)
    gop_note = f"{gop or 'clip length'} ({gop_source}); the same GOP is used for ncodec and x264-lowdelay"
    codec_info = describe_codecs(cfg, ncodec, qualities, gop_note)
    sweeps = {c: qualities if c == NCODEC else codec_info[c]["sweep"]["crf"] for c in cfg.codecs if c != ABR}
    run_codecs = [c for c in cfg.codecs if c != ABR] + ([ABR, ABR_REFERENCE] if ABR in cfg.codecs else [])
    n_abr = 2 * len(ABR_BPP_QUICK if cfg.quick else ABR_BPP) if ABR in cfg.codecs else 0
    points: list[dict] = []
    failures: list[dict] = []
    clip_desc: list[dict] = []
    bar = tqdm(total=(sum(map(len, sweeps.values())) + n_abr) * len(clips), disable=not progress, unit="pt",
               dynamic_ncols=True)
    try:
        for clip in clips:
            t, h, w = clip.shape
            clip_gop = gop or t
            clip_desc.append({**clip.describe(), "gop": clip_gop, "gop_source": gop_source})
            if "msssim" in cfg.metrics:
                clip_desc[-1]["msssim_scales"] = metrics.msssim_scales(h, w)
            if ncodec is not None:
                try:
                    ncodec_runner.warm_up(ncodec, clip.frames, clip.fps)
                except Exception as e:  # the timed points will fail the same way and be reported there
                    log(f"warning: ncodec warm-up on {clip.name} failed: {type(e).__name__}: {e}".splitlines()[0])
            clip_sweeps = dict(sweeps)
            if ABR in cfg.codecs:
                clip_sweeps[ABR] = clip_sweeps[ABR_REFERENCE] = abr_targets(clip, cfg.quick)
            for codec, sweep in clip_sweeps.items():
                for value in sweep:
                    bar.set_description(f"{clip.name} {codec} {value}")
                    try:
                        points.append(_measure(clip, codec, value, clip_gop, cfg, ncodec, codec_info[codec]))
                    except Exception as e:  # one failed point must not lose the whole run; it is reported
                        msg = f"{type(e).__name__}: {e}".splitlines()[0]
                        failures.append({"clip": clip.name, "codec": codec, "value": value, "error": msg})
                        log(f"warning: {clip.name} {codec} {value} failed: {msg}")
                    bar.update(1)
    finally:
        bar.close()
    return {"codecs": codec_info, "clips": clip_desc, "points": points, "failures": failures,
            "bd_rates": compute_bd_rates(points, [c.name for c in clips], run_codecs)}


def rd_keys(points: list[dict]) -> list[str]:
    """RD metric keys present in the points."""
    return [k for k in metrics.RD_KEYS if any(k in p for p in points)]


def compute_bd_rates(points: list[dict], clip_names: list[str], codecs: list[str]) -> dict:
    """BD-rate (bpp vs each metric) of every codec against x264-lowdelay, per clip and averaged."""
    out: dict = {"reference": REFERENCE, "method": bdrate.METHOD, "rate": "bpp", "metrics": {}}
    if REFERENCE not in codecs:
        out["reason"] = f"reference codec {REFERENCE} was not run"
        return out
    for key in rd_keys(points):
        per_metric = {}
        for codec in codecs:
            per_clip = {}
            for clip in clip_names:
                ref = [p for p in points if p["clip"] == clip and p["codec"] == REFERENCE]
                test = [p for p in points if p["clip"] == clip and p["codec"] == codec]
                per_clip[clip] = bdrate.bd_rate([p["bpp"] for p in ref], [p.get(key) for p in ref],
                                                [p["bpp"] for p in test], [p.get(key) for p in test])
            per_metric[codec] = {"per_clip": per_clip, "average": bdrate.average(per_clip)}
        out["metrics"][key] = per_metric
    return out
