"""Tests of the `ncodec` command line: every input and output format, errors, info, interrupts, memory, demo.

The installed command runs in a subprocess for the end-to-end cases (exit codes, stderr, interrupt, peak memory,
demo); the format and error matrices call `neuralcodec.cli.main` in-process, the same code without the ~10 s of
process start-up (torch, compressai) per run, to keep this file within a few minutes on 2 cores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from test_io import pattern, write_clip, write_png_dir

import bitstream
import neuralcodec
from neuralcodec.cli import main
from neuralcodec.io import open_video, open_writer

NCODEC = shutil.which("ncodec", path=str(Path(sys.executable).parent)) or shutil.which("ncodec")
# One torch thread: on a busy 2-core machine (tests beside a training run) OpenMP's spin-waiting threads make
# the small per-frame work of these tiny clips 10x+ slower. The behaviour under test does not depend on it.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FPS = Fraction(30000, 1001)
W, H = 40, 24


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(*args: str | os.PathLike, check: bool = True) -> subprocess.CompletedProcess:
    """The installed `ncodec` command in a subprocess."""
    assert NCODEC, "the ncodec command is not installed (pip install -e .)"
    result = subprocess.run([NCODEC, *map(str, args)], capture_output=True, text=True, timeout=300, env=ENV)
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def cli(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    """`ncodec` in-process: exit status, stdout and stderr, like a subprocess run."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse: usage errors, --help
            code = exc.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def ok(*args: str | os.PathLike) -> subprocess.CompletedProcess:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    return result


def assert_error(result: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 1 and exactly one stderr line `ncodec: error: ...` mentioning ``words``, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("ncodec: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def listing(folder: Path) -> dict[str, bytes | list]:
    """Names and contents of everything in a folder (to prove a failed run changed nothing)."""
    return {p.name: (p.read_bytes() if p.is_file() else sorted(q.name for q in p.iterdir()))
            for p in sorted(folder.iterdir())}


def header_of(path: Path) -> bitstream.StreamHeader:
    with open(path, "rb") as f:
        return bitstream.StreamReader(f).header


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    """A small odd-sized .ncv (33x17, 5 frames, 30000/1001 fps) made by the installed command."""
    folder = tmp_path_factory.mktemp("stream")
    source = write_clip(folder / "odd.mkv", pattern(33, 17, 5), "ffv1", "bgr0", FPS)
    result = run("encode", source, "-o", folder / "odd.ncv")
    assert "odd.ncv: 5 frames 33x17" in result.stdout and "kbit/s" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["odd.mkv", "odd.ncv"]  # no temp file left
    return folder / "odd.ncv"


# ---------------------------------------------------------------- the installed command, end to end


def test_installed_command_round_trip(tmp_path, stream):
    result = run("decode", stream, "-o", tmp_path / "out.mkv")
    assert "5 frames" in result.stdout
    info, frames = open_video(tmp_path / "out.mkv")
    assert (info.width, info.height, info.fps) == (33, 17, FPS)
    source = pattern(33, 17, 5)
    for src, dec in zip(source, frames, strict=True):
        err = np.abs(src.astype(float) - dec).mean()
        assert err < 40, err  # a working codec, not noise or a blank frame (mean abs error of noise ~85)
        assert err < np.abs(src.astype(float) - src.mean()).mean()  # better than a flat grey frame

    data = json.loads(run("info", stream, "--json").stdout)
    size = stream.stat().st_size
    assert (data["width"], data["height"], data["frame_count"], data["fps"]) == (33, 17, 5, "30000/1001")
    assert data["total_bytes"] == size
    assert data["header_bytes"] + sum(f["bytes"] for f in data["frames"]) == size
    assert [f["index"] for f in data["frames"]] == list(range(5)) and data["frames"][0]["type"] == "I"
    assert data["i_frames"] + data["p_frames"] == 5
    assert data["kbit_per_s"] == pytest.approx(size * 8 / (5 / (30000 / 1001)) / 1000)
    assert data["bits_per_pixel"] == pytest.approx(size * 8 / (5 * 33 * 17))
    assert len(data["model_hash"]) == 16 and data["model_name"]


def test_installed_command_version_and_exit_codes(tmp_path, stream):
    assert run("--version").stdout.strip() == f"ncodec {neuralcodec.__version__}"
    clip = write_clip(tmp_path / "in.y4m", pattern(W, H, 2), "rawvideo", "yuv420p")
    data = stream.read_bytes()
    (tmp_path / "trunc.ncv").write_bytes(data[:-7])
    before = listing(tmp_path)
    result = run("encode", clip, "-o", tmp_path / "a.ncv", "--quality", "999", check=False)
    assert result.returncode == 2 and "usage:" in result.stderr and "--quality" in result.stderr
    assert_error(run("decode", tmp_path / "trunc.ncv", "-o", tmp_path / "a.mp4", check=False), "trunc.ncv")
    assert listing(tmp_path) == before


def test_interrupt_removes_temp_file(tmp_path):
    clip = tmp_path / "long.y4m"
    with open_writer(clip, 64, 48, Fraction(25)) as writer:
        for frame in pattern(64, 48, 1000):
            writer.write(frame)
    before = listing(tmp_path)
    proc = subprocess.Popen([NCODEC, "encode", str(clip), "-o", str(tmp_path / "out.ncv")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.ncv.tmp*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let it code a few frames
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["ncodec: interrupted"]
    assert listing(tmp_path) == before


def peak_rss_kb(*args: str | os.PathLike) -> int:
    """Peak resident memory (KiB) of one `ncodec` run, measured in a fresh wrapper process."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, NCODEC, *map(str, args)], capture_output=True, text=True,
                         timeout=300, check=True, env=ENV).stdout.split()
    assert out[0] == "0"
    return int(out[1])


def test_memory_does_not_grow_with_length(tmp_path):
    rss = {}
    for count in (30, 300):
        clip = tmp_path / f"c{count}.y4m"
        with open_writer(clip, 64, 48, Fraction(25)) as writer:
            for frame in pattern(64, 48, count):
                writer.write(frame)
        # --gop 2: every other frame skips the motion search (the slow part), P-frames still run throughout
        enc = peak_rss_kb("encode", clip, "-o", tmp_path / f"c{count}.ncv", "--quiet", "--gop", "2")
        dec = peak_rss_kb("decode", tmp_path / f"c{count}.ncv", "-o", tmp_path / f"d{count}.y4m", "--quiet")
        rss[count] = (enc, dec)
    assert header_of(tmp_path / "c300.ncv").frame_count == 300
    for longer, shorter in zip(rss[300], rss[30]):
        assert longer <= 1.2 * shorter, rss
        # Stricter: the baseline (torch, compressai) is ~1 GB, so 20% would hide ~700 KB/frame. Measured growth
        # is < 1 MB; 8 MB over 270 more frames fails on keeping even one float32 copy (36 KB) of every frame.
        assert longer - shorter <= 8 * 1024, rss


def test_demo(tmp_path):
    from PIL import Image

    out = run("demo", "-o", tmp_path / "demo").stdout
    assert "PSNR" in out and "bpp" in out and "x264" in out and "ncodec" in out
    image = Image.open(tmp_path / "demo" / "side_by_side.png")
    assert image.width > 3 * 320 and image.height > 136
    assert header_of(tmp_path / "demo" / "sample.ncv").frame_count >= 24
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["sample.ncv", "side_by_side.png"]


# ---------------------------------------------------------------- formats and errors, in-process


# name -> function writing a 3-frame input clip into a folder
INPUTS = {
    "mp4-h264": lambda d: write_clip(d / "in.mp4", pattern(W, H, 3), "libx264", "yuv420p", FPS),
    "mkv-ffv1": lambda d: write_clip(d / "in.mkv", pattern(W, H, 3), "ffv1", "bgr0", FPS),
    "webm-vp9": lambda d: write_clip(d / "in.webm", pattern(W, H, 3), "libvpx-vp9", "yuv420p", FPS,
                                     {"deadline": "realtime"}),
    "mov": lambda d: write_clip(d / "in.mov", pattern(W, H, 3), "mpeg4", "yuv420p", FPS),
    "avi": lambda d: write_clip(d / "in.avi", pattern(W, H, 3), "mpeg4", "yuv420p", FPS),
    "y4m": lambda d: write_clip(d / "in.y4m", pattern(W, H, 3), "rawvideo", "yuv420p", FPS),
    "10bit": lambda d: write_clip(d / "in.mp4", pattern(W, H, 3), "libx264", "yuv420p10le", FPS),
    "gray": lambda d: write_clip(d / "in.mkv", pattern(W, H, 3), "ffv1", "gray", FPS),
    "rgba": lambda d: write_clip(d / "in.mkv", pattern(W, H, 3), "ffv1", "bgra", FPS),
    "png-dir": lambda d: write_png_dir(d / "in", pattern(W, H, 3)),
    "odd-33x17": lambda d: write_clip(d / "in.mkv", pattern(33, 17, 3), "ffv1", "bgr0", FPS),
}


@pytest.mark.parametrize("name", list(INPUTS))
def test_encodes_every_input_format(tmp_path, name):
    source = INPUTS[name](tmp_path)
    info, _ = open_video(source)
    result = ok("encode", source, "-o", tmp_path / "out.ncv")
    assert "out.ncv: 3 frames" in result.stdout and "kbit/s" in result.stdout  # the summary line
    header = header_of(tmp_path / "out.ncv")
    assert (header.width, header.height, header.frame_count) == (info.width, info.height, 3)
    assert header.fps == (Fraction(30) if name == "png-dir" else FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "out.ncv"])  # no temp files


@pytest.mark.parametrize("output", ["out.y4m", "out.mkv", "out.mp4", "frames", "frames2/"])
def test_decodes_every_output_format(tmp_path, stream, output):
    result = ok("decode", stream, "-o", tmp_path / output)
    assert "5 frames" in result.stdout
    target = tmp_path / output.rstrip("/")
    info, frames = open_video(target)
    assert len(list(frames)) == 5
    if output == "out.mp4":  # H.264 4:2:0: odd sizes padded to even
        assert (info.width, info.height) == (34, 18)
    else:
        assert (info.width, info.height) == (33, 17)
    if target.is_dir():
        assert sorted(p.name for p in target.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 6)]
    else:
        assert info.fps == FPS
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_info_text(stream):
    data = json.loads(ok("info", stream, "--json").stdout)
    text = ok("info", stream).stdout
    assert "33x17" in text and "kbit/s" in text and "bits/pixel" in text and data["model_name"] in text
    assert f"{data['kbit_per_s']:.2f} kbit/s" in text
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in [[str(i)] for i in range(5)]]
    assert [r[1] for r in rows] == [f["type"] for f in data["frames"]]
    assert [int(r[2].replace(",", "")) for r in rows] == [f["bytes"] for f in data["frames"]]


def test_help_has_examples():
    text = cli("--help").stdout
    for word in ["encode", "decode", "info", "demo", "examples:", "ncodec encode clip.mp4 -o clip.ncv"]:
        assert word in text


def test_usage_errors_exit_2(tmp_path, stream):
    clip = write_clip(tmp_path / "in.y4m", pattern(W, H, 2), "rawvideo", "yuv420p")
    before = listing(tmp_path)
    cases = [
        ["encode", clip, "-o", tmp_path / "a.ncv", "--quality", "0"],
        ["encode", clip, "-o", tmp_path / "a.ncv", "--gop", "0"],
        ["encode", clip],  # no -o
        ["encode", clip, "-o", tmp_path / "a.mp4"],  # not an .ncv name
        ["decode", stream, "-o", tmp_path / "a.avi"],  # unsupported output format
        ["frobnicate"],
        [],
    ]
    for args in cases:
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "usage:" in result.stderr
    assert listing(tmp_path) == before


def test_bad_inputs_exit_1_and_leave_nothing(tmp_path, stream):
    (tmp_path / "notes.txt").write_text("not a video\n" * 50)
    data = stream.read_bytes()
    (tmp_path / "trunc.ncv").write_bytes(data[: len(data) - 7])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    (tmp_path / "flipped.ncv").write_bytes(bytes(flipped))
    (tmp_path / "empty.ncv").write_bytes(b"")
    header, packets = bitstream.unpack_stream(data)
    other = dataclasses.replace(header, model_hash=bytes(8 * [0xAB]))
    (tmp_path / "otherhash.ncv").write_bytes(bitstream.pack_stream(other, packets))
    unknown = dataclasses.replace(header, model_name="no-such-model")
    (tmp_path / "unknown.ncv").write_bytes(bitstream.pack_stream(unknown, packets))
    clip = write_clip(tmp_path / "in.y4m", pattern(W, H, 2), "rawvideo", "yuv420p")
    before = listing(tmp_path)
    cases = [
        (["encode", tmp_path / "missing.mp4", "-o", tmp_path / "a.ncv"], "missing.mp4"),
        (["encode", tmp_path / "notes.txt", "-o", tmp_path / "a.ncv"], "notes.txt"),
        (["encode", clip, "-o", tmp_path / "a.ncv", "--model", "no-such-model"], "no-such-model"),
        (["encode", clip, "-o", tmp_path / "nofolder" / "a.ncv"], "nofolder"),
        (["decode", tmp_path / "missing.ncv", "-o", tmp_path / "a.mkv"], "missing.ncv"),
        (["decode", tmp_path, "-o", tmp_path / "a.mkv"], "not a file"),
        (["decode", clip, "-o", tmp_path / "a.mkv"], "in.y4m"),  # not an .ncv
        (["decode", tmp_path / "empty.ncv", "-o", tmp_path / "a.mkv"], "empty.ncv"),
        (["decode", tmp_path / "trunc.ncv", "-o", tmp_path / "a.mkv"], "trunc.ncv"),
        (["decode", tmp_path / "trunc.ncv", "-o", tmp_path / "a.y4m"], "trunc.ncv"),
        (["decode", tmp_path / "trunc.ncv", "-o", tmp_path / "dir"], "trunc.ncv"),
        (["decode", tmp_path / "flipped.ncv", "-o", tmp_path / "a.mkv"], "flipped.ncv"),
        (["decode", tmp_path / "otherhash.ncv", "-o", tmp_path / "a.mkv"], "abababababababab"),
        (["decode", tmp_path / "unknown.ncv", "-o", tmp_path / "a.mkv"], "no-such-model"),
        (["info", tmp_path / "trunc.ncv"], "trunc.ncv"),
        (["info", tmp_path / "flipped.ncv", "--json"], "flipped.ncv"),
        (["info", tmp_path / "missing.ncv"], "missing.ncv"),
    ]
    for args, word in cases:
        assert_error(cli(*args), word)
        assert listing(tmp_path) == before, args


def test_existing_output_needs_force(tmp_path, stream):
    clip = write_clip(tmp_path / "in.y4m", pattern(W, H, 2), "rawvideo", "yuv420p")
    for name in ["a.ncv", "a.mkv"]:
        (tmp_path / name).write_bytes(b"precious")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "keep.txt").write_text("precious")
    before = listing(tmp_path)
    for args in (["encode", clip, "-o", tmp_path / "a.ncv"], ["decode", stream, "-o", tmp_path / "a.mkv"],
                 ["decode", stream, "-o", tmp_path / "dir"], ["decode", stream, "-o", tmp_path / "dir/"]):
        assert_error(cli(*args), "exists", "--force")
        assert listing(tmp_path) == before
    ok("encode", clip, "-o", tmp_path / "a.ncv", "--force", "--quiet")
    assert header_of(tmp_path / "a.ncv").frame_count == 2
    ok("decode", stream, "-o", tmp_path / "a.mkv", "--force", "--quiet")
    info, _ = open_video(tmp_path / "a.mkv")
    assert (info.width, info.height) == (33, 17)
    ok("decode", stream, "-o", tmp_path / "dir", "--force", "--quiet")
    assert sorted(p.name for p in (tmp_path / "dir").iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 6)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mkv", "a.ncv", "dir", "in.y4m"]
    assert oct((tmp_path / "a.ncv").stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_quality_and_gop_reach_the_stream(tmp_path):
    codec = neuralcodec.load_codec()
    clip = write_clip(tmp_path / "in.y4m", pattern(W, H, 4), "rawvideo", "yuv420p")
    sizes = {}
    for quality in (codec.qualities[0], codec.qualities[-1]):
        out = tmp_path / f"q{quality}.ncv"
        ok("encode", clip, "-o", out, "--quality", quality, "--gop", 2, "--quiet")
        header = header_of(out)
        assert (header.quality, header.gop) == (quality, 2)
        sizes[quality] = out.stat().st_size
        types = [f["type"] for f in json.loads(ok("info", out, "--json").stdout)["frames"]]
        assert types == ["I", "P", "I", "P"]
    assert sizes[codec.qualities[0]] < sizes[codec.qualities[-1]]
    default = tmp_path / "default.ncv"
    ok("encode", clip, "-o", default, "--quiet")
    assert header_of(default).quality == codec.default_quality


def test_demo_x264_match_is_closest_not_above():
    from neuralcodec.demo import match_x264, psnr, sample_frames, x264_roundtrip

    fps, frames = sample_frames()
    frames = frames[:4]
    target = x264_roundtrip(frames, fps, 30)[0] + 50
    crf, size, decoded = match_x264(frames, fps, target)
    assert size <= target and len(decoded) == 4
    assert crf == 0 or x264_roundtrip(frames, fps, crf - 1)[0] > target  # one CRF lower would be too big
    assert 25 < psnr(frames, decoded) < 60
    assert match_x264(frames, fps, 10)[0] == 51  # unreachably small: the smallest x264 can do
