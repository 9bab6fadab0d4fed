"""Tests of neuralcodec.io: reading every input format as RGB frames, writing every output format, bad inputs."""

from __future__ import annotations

import os
import signal
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from neuralcodec.io import (
    InputError,
    Interrupted,
    OutputError,
    VideoInfo,
    atomic_output,
    is_frame_folder,
    open_video,
    open_writer,
    output_kind,
)


def pattern(width: int, height: int, count: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth moving colour gradients (so lossy formats stay close) with a little fixed noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    noise = rng.integers(-3, 4, (height, width, 3))
    frames = []
    for t in range(count):
        r = 128 + 100 * np.sin((xx + 7 * t) / 9.0)
        g = 128 + 100 * np.cos((yy - 5 * t) / 7.0)
        b = 128 + 80 * np.sin((xx + yy + 3 * t) / 13.0)
        frames.append(np.clip(np.stack([r, g, b], -1) + noise, 0, 255).astype(np.uint8))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], codec: str, pix_fmt: str, fps: Fraction = Fraction(25),
               options: dict | None = None, fmt: str | None = None) -> Path:
    """Write RGB frames with any PyAV encoder/pixel format (test inputs in many formats)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options or {}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            frame.time_base = 1 / fps
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_png_dir(path: Path, frames: list[np.ndarray], names: list[str] | None = None) -> Path:
    path.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(path / (names[i] if names else f"f{i:03d}.png"))
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


# (name, suffix, codec, pix_fmt, options, min PSNR vs source or None to compare luma only)
INPUTS = [
    ("mp4-h264", ".mp4", "libx264", "yuv420p", {"crf": "12"}, 30),
    ("mkv-ffv1", ".mkv", "ffv1", "bgr0", {}, 99),
    ("webm-vp9", ".webm", "libvpx-vp9", "yuv420p", {"crf": "10", "b": "0", "deadline": "realtime"}, 30),
    ("mov-mpeg4", ".mov", "mpeg4", "yuv420p", {"qscale": "2"}, 25),
    ("avi-mjpeg", ".avi", "mjpeg", "yuvj420p", {"qscale": "2"}, 28),
    ("y4m", ".y4m", "rawvideo", "yuv420p", {}, 30),
    ("10bit-h264", ".mp4", "libx264", "yuv420p10le", {"crf": "12"}, 30),
    ("10bit-ffv1", ".mkv", "ffv1", "yuv444p10le", {}, 40),
    ("gray-ffv1", ".mkv", "ffv1", "gray", {}, None),
    ("rgba-ffv1", ".mkv", "ffv1", "bgra", {}, 99),
]


@pytest.mark.parametrize("name,suffix,codec,pix_fmt,options,min_psnr", INPUTS, ids=[i[0] for i in INPUTS])
def test_reads_every_input_format(tmp_path, name, suffix, codec, pix_fmt, options, min_psnr):
    source = pattern(48, 32, 6)
    fps = Fraction(30000, 1001)
    path = write_clip(tmp_path / f"clip{suffix}", source, codec, pix_fmt, fps, options)
    info, frames = open_video(path)
    assert (info.width, info.height) == (48, 32)
    assert info.fps == fps
    assert info.frame_count in (0, 6)
    frames = list(frames)
    assert len(frames) == 6
    for src, got in zip(source, frames):
        assert got.shape == (32, 48, 3) and got.dtype == np.uint8
        if min_psnr is None:  # gray: all channels equal, following the source's luma
            assert np.array_equal(got[..., 0], got[..., 1]) and np.array_equal(got[..., 0], got[..., 2])
            assert np.abs(got[..., 0] - luma(src)).mean() < 4
        else:
            assert psnr(src, got) >= min_psnr


def test_odd_size_and_frame_rate_kept(tmp_path):
    source = pattern(33, 17, 4)
    path = write_clip(tmp_path / "odd.mkv", source, "ffv1", "bgr0", Fraction(7, 2))
    info, frames = open_video(path)
    assert info == VideoInfo(33, 17, Fraction(7, 2), info.frame_count)
    assert all(np.array_equal(a, b) for a, b in zip(source, frames, strict=True))


def test_png_dir_sorted_naturally_and_fps(tmp_path):
    source = pattern(20, 10, 11)
    names = [f"frame_{i + 1}.png" for i in range(11)]  # frame_10 must come after frame_9
    path = write_png_dir(tmp_path / "pngs", source, names)
    (path / "notes.txt").write_text("not a frame")
    info, frames = open_video(path)
    assert info == VideoInfo(20, 10, Fraction(30), 11)
    assert all(np.array_equal(a, b) for a, b in zip(source, frames, strict=True))
    info, _ = open_video(path, fps=Fraction(24000, 1001))
    assert info.fps == Fraction(24000, 1001)


def test_png_dir_rgba_gray_and_16bit(tmp_path):
    base = pattern(16, 8, 1)[0]
    path = tmp_path / "mixed"
    path.mkdir()
    rgba = np.dstack([base, np.full(base.shape[:2], 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(path / "a.png")
    gray = base[..., 1]
    Image.fromarray(gray, "L").save(path / "b.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(path / "c.png")  # 16-bit grayscale
    _, frames = open_video(path)
    a, b, c = frames
    assert np.array_equal(a, base)  # alpha dropped, colour untouched
    assert np.array_equal(b, np.dstack([gray] * 3))
    assert np.abs(c.astype(int) - np.dstack([gray] * 3)).max() <= 1


def test_png_dir_size_change_is_an_error(tmp_path):
    path = tmp_path / "pngs"
    path.mkdir()
    Image.fromarray(pattern(16, 8, 1)[0]).save(path / "a.png")
    Image.fromarray(pattern(8, 8, 1)[0]).save(path / "b.png")
    info, frames = open_video(path)
    assert info.frame_count == 2
    next(frames)
    with pytest.raises(InputError, match="b.png"):
        next(frames)


def test_bad_inputs_raise_input_error(tmp_path):
    (tmp_path / "text.txt").write_text("hello\n" * 100)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(4096))
    (tmp_path / "art.bin").write_bytes(bytes(range(256)) * 16)  # ffmpeg's "binary text" demuxer would accept it
    (tmp_path / "nopngs").mkdir()
    (tmp_path / "brokenpng").mkdir()
    (tmp_path / "brokenpng" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    for name in ["missing.mp4", "text.txt", "empty.mp4", "noise.mp4", "art.bin", "nopngs", "brokenpng"]:
        with pytest.raises(InputError) as err:
            info, frames = open_video(tmp_path / name)
            list(frames)
        message = str(err.value)
        assert "\n" not in message and name in message


def test_audio_only_file_is_not_video(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(InputError, match="no video stream"):
        open_video(path)


def test_output_kind_rules(tmp_path):
    assert output_kind("a.y4m") == "y4m" and output_kind("a.MKV") == "mkv" and output_kind("a.mp4") == "mp4"
    assert output_kind("frames/") == "png" and output_kind("frames") == "png"
    (tmp_path / "dir.d").mkdir()
    assert output_kind(tmp_path / "dir.d") == "png"
    for bad in ["a.avi", "a.ncv", "a.webm"]:
        with pytest.raises(ValueError, match="unsupported output format"):
            output_kind(bad)


@pytest.mark.parametrize("kind", ["y4m", "mkv", "mp4", "png"])
@pytest.mark.parametrize("size", [(32, 24), (33, 17)])
def test_writers_round_trip(tmp_path, kind, size):
    width, height = size
    source = pattern(width, height, 5)
    fps = Fraction(30000, 1001)
    path = tmp_path / ("out" if kind == "png" else f"out.{kind}")
    with open_writer(path, width, height, fps) as writer:
        for frame in source:
            writer.write(frame)
    info, frames = open_video(path, fps=fps if kind == "png" else None)
    frames = list(frames)
    assert len(frames) == 5 and info.fps == fps
    if kind == "mp4":  # 4:2:0 needs even sizes: odd sizes are padded by repeating the last row/column
        assert (info.width, info.height) == (width + width % 2, height + height % 2)
        frames = [f[:height, :width] for f in frames]
        assert min(psnr(a, b) for a, b in zip(source, frames)) > 30
    else:
        assert (info.width, info.height) == (width, height)
        worst = max(np.abs(a.astype(int) - b).max() for a, b in zip(source, frames))
        assert worst <= (3 if kind == "y4m" else 0)  # y4m: only RGB->YUV 4:4:4 rounding; mkv, png: lossless
    if kind == "png":
        assert sorted(p.name for p in path.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 6)]


@pytest.mark.parametrize("kind", ["mkv", "y4m", "png", "mp4"])
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 40), height=st.integers(1, 40), count=st.integers(1, 3),
       num=st.integers(1, 60000), den=st.integers(1, 1001))
def test_writers_keep_any_size_and_rate(tmp_path, kind, width, height, count, num, den):
    fps = Fraction(num, den)
    if not (Fraction(1, 10) <= fps <= 240):
        fps = Fraction(25)
    source = pattern(width, height, count, seed=width * 41 + height)
    path = tmp_path / (f"p{width}x{height}x{count}-{num}-{den}" + ("" if kind == "png" else f".{kind}"))
    with open_writer(path, width, height, fps) as writer:
        for frame in source:
            writer.write(frame)
    info, frames = open_video(path, fps=fps if kind == "png" else None)
    frames = [f[:height, :width] for f in frames]
    assert len(frames) == count
    if kind == "mp4":
        assert (info.width, info.height) == (width + width % 2, height + height % 2)
    else:
        assert (info.width, info.height) == (width, height)
        tolerance = {"mkv": 0, "png": 0, "y4m": 3}[kind]
        assert all(np.abs(a.astype(int) - b).max() <= tolerance for a, b in zip(source, frames))
    # Matroska stores frame durations in ns, the others the exact fraction
    assert abs(float(info.fps) - float(fps)) / float(fps) < (1e-3 if kind == "mkv" else 1e-9)


def test_writer_rejects_wrong_frames_and_sizes(tmp_path):
    with open_writer(tmp_path / "a.mkv", 8, 6, Fraction(25)) as writer:
        with pytest.raises(ValueError, match=r"\(6, 8, 3\) uint8"):
            writer.write(np.zeros((6, 8, 4), np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((6, 8, 3), np.float32))
        writer.write(np.zeros((6, 8, 3), np.uint8))
    for width, height, fps in [(0, 6, 25), (8, 100000, 25), (8, 6, 0)]:
        with pytest.raises(ValueError):
            open_writer(tmp_path / "b.mkv", width, height, Fraction(fps))


def test_iterator_can_be_abandoned(tmp_path):
    source = pattern(16, 16, 40)
    path = write_clip(tmp_path / "long.mkv", source, "ffv1", "bgr0")
    info, frames = open_video(path)
    first = next(frames)
    assert np.array_equal(first, source[0])
    frames.close()  # abandoning the iterator closes the container


# ---------------------------------------------------------------- atomic_output: the one safe output routine


def test_atomic_output_writes_on_success_only(tmp_path):
    dst = tmp_path / "out.bin"
    with atomic_output(dst) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.tmp") and tmp.exists()
        tmp.write_bytes(b"new")
    assert dst.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.bin"]
    names = set()
    for _ in range(2):  # unpredictable temporary names
        with pytest.raises(RuntimeError), atomic_output(tmp_path / "other.bin") as tmp:
            names.add(tmp.name)
            tmp.write_bytes(b"partial")
            raise RuntimeError
    assert len(names) == 2 and os.listdir(tmp_path) == ["out.bin"]
    with pytest.raises(OutputError, match="exists"), atomic_output(dst) as tmp:
        pass
    with atomic_output(dst, force=True) as tmp:
        tmp.write_bytes(b"newer")
    assert dst.read_bytes() == b"newer" and os.listdir(tmp_path) == ["out.bin"]
    with pytest.raises(OutputError, match="does not exist"), atomic_output(tmp_path / "no" / "x") as tmp:
        pass


def test_atomic_output_refuses_what_is_not_ours(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "link").symlink_to(victim)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "frame_000001.png").write_bytes(b"png")
    (tmp_path / "folder" / "notes.txt").write_bytes(b"mine")
    (tmp_path / "empty").mkdir()
    targets = {"link": "symbolic link", "folder": "did not write", "empty": "did not write"}
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        targets["fifo"] = "FIFO"
    for name, words in targets.items():
        for directory in (False, True):
            with pytest.raises(OutputError, match=words), atomic_output(tmp_path / name, True, directory) as tmp:
                tmp.joinpath("x").write_bytes(b"") if directory else tmp.write_bytes(b"")
    assert victim.read_bytes() == b"precious" and (tmp_path / "link").is_symlink()
    assert sorted(os.listdir(tmp_path / "folder")) == ["frame_000001.png", "notes.txt"]
    assert sorted(os.listdir(tmp_path)) == sorted({"victim", *targets})  # no temporary left
    with pytest.raises(OutputError, match="character device"), atomic_output("/dev/null", force=True):
        pass


def test_frame_folder_is_replaced_only_when_it_holds_only_frames(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in (1, 2, 3):
        (frames / f"frame_{i:06d}.png").write_bytes(b"old")
    assert is_frame_folder(frames)
    with atomic_output(frames, force=True, directory=True) as tmp:
        (tmp / "frame_000001.png").write_bytes(b"new")
    assert os.listdir(frames) == ["frame_000001.png"] and sorted(os.listdir(tmp_path)) == ["frames"]
    (frames / "sub").mkdir()
    assert not is_frame_folder(frames) and not is_frame_folder(tmp_path / "missing")
    (frames / "sub").rmdir()
    (frames / "frame_000002.png").symlink_to(tmp_path)
    assert not is_frame_folder(frames)


def test_sigterm_and_sighup_remove_the_temporary(tmp_path):
    for signum in (signal.SIGTERM, signal.SIGHUP):
        inherited = signal.signal(signum, signal.SIG_DFL)  # a run under nohup inherits SIGHUP ignored
        try:
            with pytest.raises(Interrupted) as err, atomic_output(tmp_path / "out.bin") as tmp:
                tmp.write_bytes(b"partial")
                os.kill(os.getpid(), signum)
            assert err.value.signum == signum and isinstance(err.value, KeyboardInterrupt)
            assert os.listdir(tmp_path) == [] and signal.getsignal(signum) == signal.SIG_DFL  # handler restored
            # an ignored signal stays ignored (nohup): the output completes
            signal.signal(signum, signal.SIG_IGN)
            with atomic_output(tmp_path / "out.bin") as tmp:
                tmp.write_bytes(b"whole")
                os.kill(os.getpid(), signum)
            assert os.listdir(tmp_path) == ["out.bin"] and (tmp_path / "out.bin").read_bytes() == b"whole"
            (tmp_path / "out.bin").unlink()
        finally:
            signal.signal(signum, inherited)


def test_stdin_and_file_object_writers(tmp_path, monkeypatch):
    import io
    import sys

    source = pattern(16, 8, 2)
    buf = io.BytesIO()
    with open_writer(buf, 16, 8, Fraction(25), kind="y4m") as writer:
        for frame in source:
            writer.write(frame)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(buf.getvalue())))
    info, frames = open_video("-")
    assert (info.width, info.height, info.fps) == (16, 8, Fraction(25)) and len(list(frames)) == 2
    with pytest.raises(ValueError, match="y4m or mkv"):
        open_writer(io.BytesIO(), 16, 8, Fraction(25), kind="mp4")


@pytest.mark.parametrize("signum, default", [(signal.SIGTERM, signal.SIG_DFL),
                                             (signal.SIGINT, signal.default_int_handler)], ids=["SIGTERM", "SIGINT"])
def test_an_interrupt_lost_in_a_library_callback_still_stops_the_work(tmp_path, signum, default):
    # PyAV calls Python file objects (a pipe on stdin or stdout) from C and drops an exception that is not an
    # Exception; a SIGTERM (or Ctrl-C) arriving inside such a read raises Interrupted there and it is lost. The
    # next frame read or written must raise it again, and the temporary must still go.
    import neuralcodec.io as nio
    clip = write_clip(tmp_path / "in.y4m", pattern(16, 16, 4), "rawvideo", "yuv420p")
    inherited = signal.signal(signum, default)
    try:
        for step in ("read", "write"):
            out = tmp_path / f"out_{step}.y4m"
            with pytest.raises(Interrupted) as err, atomic_output(out) as tmp:
                _, frames = open_video(clip)
                writer = open_writer(tmp, 16, 16, Fraction(25), "y4m")
                writer.write(next(frames))
                try:
                    signal.getsignal(signum)(signum, None)          # the handler, inside the callback
                except KeyboardInterrupt:
                    pass                                            # ... and what the callback does with it
                next(frames) if step == "read" else writer.write(np.zeros((16, 16, 3), np.uint8))
            assert err.value.signum == signum and not out.exists()
            assert signal.getsignal(signum) is default                # restored after the block
            nio.raise_pending()                                     # unwound: nothing pending any more
        assert sorted(os.listdir(tmp_path)) == ["in.y4m"]
    finally:
        signal.signal(signum, inherited)
