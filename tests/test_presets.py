"""Encoder presets and rate control: every preset decodes with the one decoder, slower presets (the latent search)
never cost more, --bitrate lands on its target."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import bitstream
from neuralcodec.codec import PRESETS, FrameCoder, FrameType
from neuralcodec.ratecontrol import RateControl, parse_bitrate

from conftest import textured_clip


pytestmark = pytest.mark.usefixtures("one_thread")


def encode_and_track(codec, clip, **kw):
    """The stream of an encode, and the frames the encoder's closed loop holds after each one."""
    import io
    buf = io.BytesIO()
    enc = codec.stream_encoder(buf, clip.shape[2], clip.shape[1], frame_count=len(clip), **kw)
    tracked = []
    for frame in clip:
        enc.write(frame)
        tracked.append(enc.last_decoded)
    enc.close()
    return buf.getvalue(), np.stack(tracked)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_decodes_with_the_standard_decoder(tiny_codec, preset):
    clip = textured_clip(5, 32, 48, pan=2, seed=11)
    data, tracked = encode_and_track(tiny_codec, clip, quality=2, gop=4, preset=preset)
    decoded = tiny_codec.decode(data)
    np.testing.assert_array_equal(decoded, tracked)   # encoder and decoder stay in step
    header, packets = bitstream.unpack_stream(data)
    assert header.version == 3 and [p.frame_type for p in packets] == [0, 1, 1, 1, 0]


def frame_costs(codec, clip, preset: str, quality: int, gop: int) -> list[float]:
    """Per frame, the rate-distortion cost bits per pixel + lambda x MSE that the encoder weighs
    (FrameCoder.cost), of the integers each preset chooses."""
    level = codec.levels[quality]
    coder = FrameCoder(codec, clip.shape[2], clip.shape[1], level, gop, preset=PRESETS[preset])
    costs = []
    for frame in clip:
        a = coder.prepare(frame)
        codes, recon = coder.choose(a, level)
        costs.append(coder.cost(a, codes, recon))
        coder.commit(a, codes, recon)
    return costs


def test_slower_presets_never_cost_more_on_i_frames(tiny_codec):
    # I-frames only: every frame sees the same input under every preset, so the guarantee is exact per frame
    clip = textured_clip(3, 64, 96, pan=3, seed=4)
    found = False
    for q in tiny_codec.qualities:
        costs = {p: frame_costs(tiny_codec, clip, p, q, gop=1) for p in ("medium", "slow", "veryslow")}
        for faster, slower in (("medium", "slow"), ("slow", "veryslow")):
            assert all(s <= f + 1e-12 for f, s in zip(costs[faster], costs[slower])), (q, costs)
        found |= any(s < m for m, s in zip(costs["medium"], costs["veryslow"]))
    assert found   # and the search does find cheaper integers


def test_slower_presets_never_cost_more_on_the_same_p_frame(tiny_codec):
    # P-frames on one reference (the medium preset's closed loop): each slower preset's choice costs at most the
    # faster one's
    clip = textured_clip(4, 64, 96, pan=2, seed=9)
    found = False
    for q in tiny_codec.qualities[::2]:
        level = tiny_codec.levels[q]
        coder = FrameCoder(tiny_codec, 96, 64, level, gop=8)
        for frame in clip:
            a = coder.prepare(frame)
            costs = []
            for name in ("medium", "slow", "veryslow"):
                coder.preset = PRESETS[name]
                costs.append(coder.cost(a, *coder.choose(a, level)))
            assert costs[0] >= costs[1] - 1e-12 and costs[1] >= costs[2] - 1e-12, (q, costs)
            found |= a.ftype == FrameType.P and costs[2] < costs[0]
            coder.preset = PRESETS["medium"]
            coder.commit(a, *coder.choose(a, level))
    assert found


def test_medium_motion_predicts_at_least_as_well_as_fast(tiny_codec):
    # the medium preset refines fast's half-pel search to quarter pels, only where the block's SAD improves
    from neuralcodec.model.motion import block_warp, luma
    clip = textured_clip(2, 64, 96, pan=3, seed=2)
    x, ref = [torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in clip[::-1]]
    sad = {}
    for name in ("fast", "medium"):
        p = PRESETS[name]
        mv = tiny_codec.model.motion(x, ref, p.search_range, p.finest_step)
        sad[name] = float((luma(x) - luma(block_warp(ref, mv, 16))).abs().mean())
    assert sad["medium"] <= sad["fast"]


def test_parse_bitrate():
    assert parse_bitrate("300k") == 300_000 and parse_bitrate("1.5M") == 1_500_000
    assert parse_bitrate("250000") == 250_000 and parse_bitrate(64_000) == 64_000
    for bad in ("", "k", "fast", "0", "-5k", "1e12", "nan", "inf", True):
        with pytest.raises(ValueError, match="bitrate"):
            parse_bitrate(bad)


def simulate(rc: RateControl, n: int, gop: int, scale: float = 1.0) -> tuple[list[int], list[int]]:
    """Frames whose size doubles per quality step (I-frames 6x a P-frame); returns chosen qualities and sizes."""
    qualities, sizes = [], []
    for t in range(n):
        ftype = FrameType.I if t % gop == 0 else FrameType.P
        per_q = {q: int(scale * (6 if ftype == FrameType.I else 1) * 200 * 2 ** q) for q in rc.qualities}
        q = rc.choose(ftype, per_q)
        rc.update(ftype, q, per_q[q])
        qualities.append(q)
        sizes.append(per_q[q])
    return qualities, sizes


@pytest.mark.parametrize("known", [True, False])
@pytest.mark.parametrize("target", [20_000, 60_000, 150_000])
def test_rate_control_lands_on_target_within_its_buffer(target, known):
    fps, n = 25, 75
    rc = RateControl(target, fps, range(1, 9), frame_count=n if known else 0)
    qualities, sizes = simulate(rc, n, gop=32)
    achieved = sum(sizes) * fps / n
    assert abs(achieved / target - 1) < 0.05, (achieved, qualities)
    fullness = 0.0
    for s in sizes:   # the leaky bucket of one second of the target rate never overflows by more than 10 %
        fullness = max(0.0, fullness + s - target / fps)
        assert fullness <= 1.1 * target
    assert len(set(qualities)) > 1


def test_rate_control_of_an_all_intra_stream():
    rc = RateControl(200_000, 25, range(1, 9), frame_count=60)
    qualities, sizes = simulate(rc, 60, gop=1)
    assert abs(sum(sizes) * 25 / 60 / 200_000 - 1) < 0.05, qualities


def test_rate_control_api_and_info(tiny_codec):
    clip = textured_clip(60, 32, 48, pan=1, seed=2)
    rates = [len(tiny_codec.encode(clip, quality=q, fps=25)) * 8 * 25 / 60 for q in (1, 3)]
    target = (rates[0] * rates[1]) ** 0.5
    data, tracked = encode_and_track(tiny_codec, clip, bitrate=target, fps=25, gop=32)
    assert abs(len(data) * 8 * 25 / 60 / target - 1) < 0.05, (len(data), target, rates)
    header, packets = bitstream.unpack_stream(data)
    assert header.version == 3 and header.quality == 0
    assert {p.quality for p in packets} <= set(tiny_codec.qualities) and len({p.quality for p in packets}) > 1
    np.testing.assert_array_equal(tiny_codec.decode(data), tracked)
    with pytest.raises(ValueError, match="not both"):
        tiny_codec.encode(clip[:2], quality=2, bitrate="100k")
    with pytest.raises(ValueError, match="preset"):
        tiny_codec.encode(clip[:2], preset="placebo")


@pytest.mark.parametrize("mode", [{"bitrate": 60_000}, {"quality": 3, "preset": "slow"}])
def test_each_latents_chunk_is_coded_once_per_frame(tiny_codec, monkeypatch, mode):
    # a rate controller (the sizes it asks for) and a slow preset (every candidate's cost) look at a frame's chunks
    # before the packet is written: the packet takes the chunk already coded instead of coding it again, and the
    # stream is the one coded without that cache
    clip = textured_clip(6, 32, 48, pan=2, seed=5)
    reference, _ = encode_and_track(tiny_codec, clip, fps=25, gop=4, **mode)
    coded, looks = [], []
    real_code, real_bits = type(tiny_codec.entropy).encode_latents, FrameCoder.bits
    monkeypatch.setattr(type(tiny_codec.entropy), "encode_latents",
                        lambda self, *args: coded.append(1) or real_code(self, *args))
    monkeypatch.setattr(FrameCoder, "bits", lambda self, *args: looks.append(1) or real_bits(self, *args))
    data, tracked = encode_and_track(tiny_codec, clip, fps=25, gop=4, **mode)
    assert data == reference
    assert len(coded) == len(looks) >= len(clip)   # each look codes once; the packet codes nothing again
    if "preset" in mode:
        assert len(looks) == (PRESETS["slow"].refine_steps + 1) * len(clip)
    np.testing.assert_array_equal(tiny_codec.decode(data), tracked)


def exhaustive_choice(rc: RateControl, ftype, sizes: dict[int, int]) -> int:
    """The controller's rules by a scan of every level's size, for P-frames and the first frame."""
    qs = rc.qualities
    if ftype == FrameType.I:
        want = max([q for q in qs if sizes[q] <= rc.buffer / 8] or qs[:1])
    else:
        left = rc.frame_count - rc.frames if rc.frame_count > rc.frames else 0
        over = rc.spent - rc.frame_bits * rc.frames
        budget = rc.frame_bits - over / max(min(rc.fps, left) if left else rc.fps / 2, 1.0)
        best = max([q for q in qs if sizes[q] <= budget] or qs[:1])
        if over > 0 and sizes[qs[0]] > 0.75 * budget:
            want = best
        else:   # of levels of equal size the highest within budget
            want = min([q for q in qs if q >= best][:2], key=lambda q: (abs(sizes[q] - budget), q))
    while want != qs[0] and not rc._fits(sizes[want]):
        want = qs[qs.index(want) - 1]
    return want


def test_rate_control_asks_for_few_sizes_and_chooses_as_if_it_had_all():
    # sizes rising with quality (random steps, ties included): the bisections pick the level the rules pick from
    # every level's size, asking for at most 7 of 16 sizes a P-frame (ceil(log2 16) + 3) and each only once
    rng = np.random.default_rng(3)
    for known in (True, False):
        rc = RateControl(120_000, 25, range(1, 17), frame_count=200 if known else 0)
        for t in range(200):
            ftype = FrameType.I if t == 0 else FrameType.P
            steps = rng.integers(0, 900, 16) * (rng.random(16) > 0.1)
            sizes = {q: int(v) for q, v in zip(range(1, 17), (1 if t else 6) * (300 + np.cumsum(steps)))}
            asked = []
            q = rc.choose(ftype, lambda q: asked.append(q) or sizes[q])
            assert q == exhaustive_choice(rc, ftype, sizes), (t, known)
            assert len(asked) == len(set(asked)) and len(asked) <= 7, asked
            rc.update(ftype, q, sizes[q] * float(rng.uniform(0.6, 1.5)))   # what it coded may differ (presets)
