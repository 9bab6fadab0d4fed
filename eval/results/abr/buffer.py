"""Rate control on the standard set: achieved rate and the fullest the 1 s leaky bucket gets (per-frame sizes).

    PYTHONPATH=. python eval/results/abr/buffer.py      (the targets of python -m eval --codecs ncodec-abr)
"""
import neuralcodec
from bitstream import unpack_stream
from eval.clips import load_clips
from eval.runner import abr_targets

codec = neuralcodec.load_codec()
for clip in load_clips(["standard"], 50):
    t = clip.shape[0]
    for target in abr_targets(clip, quick=False):
        data = codec.encode(clip.frames, bitrate=target, fps=clip.fps)
        header, packets = unpack_stream(data)
        fullness = peak = 0.0
        per_frame = target / float(clip.fps)
        for p in packets:
            bits = 8 * (7 + 4 * len(p.chunks) + sum(len(c) for c in p.chunks))
            fullness = max(0.0, fullness + bits - per_frame)
            peak = max(peak, fullness)
        rate = 8 * len(data) * float(clip.fps) / t
        qs = [p.quality for p in packets]
        print(f"{clip.name} target {target / 1000:.1f} kbit/s: achieved {rate / 1000:.1f} ({rate / target - 1:+.1%}), "
              f"bucket peak {peak / target:.0%} of 1 s, qualities {min(qs)}-{max(qs)}")
