"""The `ncodec` command line: encode videos to .ncv, decode them, inspect streams, and run the demo."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

EXAMPLES = """\
examples:
  ncodec encode clip.mp4 -o clip.ncv                 encode at the default quality
  ncodec encode clip.y4m -o clip.ncv --quality 5 --gop 32
  ncodec encode frames/ -o clip.ncv                  a folder of PNG frames (30 fps)
  ncodec decode clip.ncv -o clip.mkv                 lossless FFV1 RGB (also .y4m, .mp4, or a folder/ of PNGs)
  ncodec info clip.ncv --json                        stream parameters, frame sizes, bitrate
  ncodec demo -o ncodec-demo                         compare with x264 on the built-in sample clip

exit status: 0 success, 1 error (bad input, corrupt stream, model mismatch, existing output), 2 usage error,
130 interrupted.
"""
# Suffixes that would make an .ncv stream look like something else.
_NOT_NCV_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".y4m", ".png", ".jpg", ".jpeg"}


class CliError(Exception):
    """An error reported as one `ncodec: error: ...` line with exit status 1."""


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return " ".join(text.split())


def _version() -> str:
    import neuralcodec

    return getattr(neuralcodec, "__version__", None) or "unknown"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ncodec` (subcommands encode, decode, info, demo)."""
    parser = argparse.ArgumentParser(
        prog="ncodec", description="ncodec: a learned video codec (.ncv streams).", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ncodec {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    enc = sub.add_parser("encode", help="encode a video (file or PNG folder) to .ncv",
                         description="Encode a video file (anything PyAV decodes) or a folder of PNG frames.")
    enc.add_argument("input", metavar="INPUT")
    enc.add_argument("-o", "--output", required=True, metavar="OUTPUT.ncv")
    enc.add_argument("--quality", type=int, metavar="Q", help="quality level (default: the model's middle level)")
    enc.add_argument("--gop", type=_positive_int, metavar="N", help="frames per group of pictures (I-frame period)")
    enc.add_argument("--model", metavar="NAME_OR_PATH", help="registry name or .safetensors path (default: shipped)")
    enc.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    enc.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    enc.set_defaults(func=_cmd_encode, parser=enc)

    dec = sub.add_parser("decode", help="decode .ncv to .y4m, .mkv, .mp4 or a PNG folder",
                         description="Decode an .ncv stream. Output by suffix: .y4m (yuv444p), .mkv (lossless FFV1 "
                                     "RGB), .mp4 (H.264 CRF 18 yuv420p; odd sizes padded to even), or a directory "
                                     "(path ending in '/' or without suffix) of PNG frames.")
    dec.add_argument("input", metavar="INPUT.ncv")
    dec.add_argument("-o", "--output", required=True, metavar="OUTPUT")
    dec.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    dec.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    dec.set_defaults(func=_cmd_decode, parser=dec)

    info = sub.add_parser("info", help="show stream parameters, frame types and sizes, bitrate",
                          description="Show an .ncv stream's parameters, per-frame types and sizes, and bitrate.")
    info.add_argument("input", metavar="INPUT.ncv")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_cmd_info, parser=info)

    demo = sub.add_parser("demo", help="encode the built-in sample clip and compare with x264",
                          description="Encode the built-in sample clip at the default quality, compare with x264 "
                                      "at about the same size, and write a side-by-side PNG.")
    demo.add_argument("-o", "--output", default="ncodec-demo", metavar="DIR", help="output folder (default: %(default)s)")
    demo.set_defaults(func=_cmd_demo, parser=demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `ncodec` with ``argv`` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            if not sys.warnoptions:  # library warnings (torch, numpy) are not for CLI users, unless asked with -W
                warnings.simplefilter("ignore")
            return args.func(args) or 0
    except KeyboardInterrupt:
        print("ncodec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except (CliError, ValueError, OSError) as exc:  # InputError, BitstreamError, ModelError, av errors
        print(f"ncodec: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - never show a traceback
        print(f"ncodec: error: unexpected {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """After a closed pipe (e.g. `ncodec info x.ncv | head`), stop Python from complaining at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# ---------------------------------------------------------------- outputs: temp name, then rename


def _check_output(target: Path, force: bool) -> None:
    if (target.exists() or target.is_symlink()) and not force:
        raise CliError(f"{target} exists (use --force to overwrite)")
    parent = target.parent
    if not parent.is_dir():
        raise CliError(f"output folder does not exist: {parent}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def _atomic_output(target: Path, force: bool, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``, on any failure delete it."""
    _check_output(target, force)
    prefix = f".{target.name}.tmp"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())  # mkstemp/mkdtemp make private (0600/0700) files
        yield tmp
        _commit(tmp, target, force)
    except BaseException:
        _remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _commit(tmp: Path, target: Path, force: bool) -> None:
    exists = target.exists() or target.is_symlink()
    if exists and not force:
        raise CliError(f"{target} exists (use --force to overwrite)")
    if not exists:
        os.rename(tmp, target)
    elif tmp.is_file() and target.is_file() and not target.is_symlink():
        os.replace(tmp, target)
    else:  # a directory is involved: move the old one aside, move the new one in, then delete the old one
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old", dir=target.parent))
        old = backup / "old"
        os.rename(target, old)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(old, target)
            shutil.rmtree(backup, ignore_errors=True)
            raise
        _remove(old)
        shutil.rmtree(backup, ignore_errors=True)


# ---------------------------------------------------------------- progress


class _Progress:
    """A tqdm bar on stderr (frames, frames/s, kbit/s over the last second of video); off if quiet or not a TTY."""

    def __init__(self, total: int, fps: Fraction, quiet: bool, desc: str):
        from tqdm import tqdm

        self.fps = float(fps)
        self.window: deque[int] = deque(maxlen=max(1, round(self.fps)))
        self.bar = tqdm(total=total or None, unit="frame", desc=desc, file=sys.stderr, dynamic_ncols=True,
                        disable=quiet or not sys.stderr.isatty(), leave=False)

    def update(self, nbytes: int) -> None:
        self.window.append(nbytes)
        kbps = sum(self.window) * 8 * self.fps / len(self.window) / 1000
        self.bar.set_postfix_str(f"{kbps:.1f} kbit/s", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _rate_text(nbytes: int, frames: int, width: int, height: int, fps: Fraction) -> str:
    if frames == 0:
        return f"{nbytes:,} bytes"
    kbps = nbytes * 8 * float(fps) / frames / 1000
    bpp = nbytes * 8 / (frames * width * height)
    return f"{nbytes:,} bytes, {kbps:.1f} kbit/s, {bpp:.4f} bpp"


# ---------------------------------------------------------------- commands


def _cmd_encode(args: argparse.Namespace) -> int:
    import neuralcodec
    from neuralcodec.io import open_video

    target = Path(args.output)
    if args.output.endswith(("/", os.sep)) or target.suffix.lower() in _NOT_NCV_SUFFIXES or target.is_dir():
        args.parser.error(f"OUTPUT must be an .ncv file, got {args.output!r}")
    _check_output(target, args.force)
    info, frames = open_video(args.input)
    codec = neuralcodec.load_codec(args.model) if args.model else neuralcodec.load_codec()
    quality = codec.default_quality if args.quality is None else args.quality
    if quality not in codec.qualities:
        levels = ", ".join(str(q) for q in codec.qualities)
        args.parser.error(f"argument --quality: {quality} is not a level of model {codec.name} (choose from {levels})")
    start = time.perf_counter()
    count = 0
    with _atomic_output(target, args.force) as tmp, open(tmp, "wb") as fileobj:
        encoder = codec.stream_encoder(fileobj, info.width, info.height, fps=info.fps, quality=quality,
                                       gop=args.gop, frame_count=0)
        progress = _Progress(info.frame_count, info.fps, args.quiet, "encode")
        try:
            for frame in frames:
                progress.update(encoder.write(frame))
                count += 1
        finally:
            progress.close()
        if count == 0:
            raise CliError(f"{args.input}: no frames to encode")
        encoder.close()
    if not args.quiet:
        elapsed = time.perf_counter() - start
        print(f"{target}: {count} frames {info.width}x{info.height} @ {_fps_text(info.fps)} fps, "
              f"model {codec.name} quality {quality}, "
              f"{_rate_text(target.stat().st_size, count, info.width, info.height, info.fps)} "
              f"({elapsed:.1f} s, {count / max(elapsed, 1e-9):.1f} frames/s)")
    return 0


def _open_ncv(path: str):
    """Open an .ncv input for reading, with a one-line error if it is missing or not a file."""
    p = Path(path)
    if not p.exists():
        raise CliError(f"input not found: {path}")
    if not p.is_file():
        raise CliError(f"input is not a file: {path}")
    try:
        return open(p, "rb")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {_one_line(exc)}") from None


@contextmanager
def _stream_errors(path: str) -> Iterator[None]:
    """Name the input file in errors about corrupt or truncated .ncv data."""
    from bitstream import BitstreamError

    try:
        yield
    except BitstreamError as exc:
        raise CliError(f"{path}: {_one_line(exc)}") from None


def _cmd_decode(args: argparse.Namespace) -> int:
    import neuralcodec
    from neuralcodec.io import open_writer, output_kind

    try:
        kind = output_kind(args.output)
    except ValueError as exc:
        args.parser.error(str(exc))
    target = Path(args.output.rstrip("/" + os.sep) or args.output)
    _check_output(target, args.force)
    start = time.perf_counter()
    count = 0
    with _open_ncv(args.input) as fileobj, _stream_errors(args.input):
        codec = neuralcodec.load_codec_for_stream(fileobj)
        fileobj.seek(0)
        decoder = codec.stream_decoder(fileobj)
        header = decoder.header
        with _atomic_output(target, args.force, directory=(kind == "png")) as tmp:
            progress = _Progress(header.frame_count, header.fps, args.quiet, "decode")
            try:
                with open_writer(tmp, header.width, header.height, header.fps, kind=kind) as writer:
                    position = fileobj.tell()
                    for frame in decoder:
                        writer.write(frame)
                        count += 1
                        now = fileobj.tell()
                        progress.update(now - position)
                        position = now
            finally:
                progress.close()
    if not args.quiet:
        elapsed = time.perf_counter() - start
        print(f"{target}: {count} frames {header.width}x{header.height} @ {_fps_text(header.fps)} fps "
              f"({elapsed:.1f} s, {count / max(elapsed, 1e-9):.1f} frames/s)")
    return 0


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps} (~{float(fps):.3f})"


def stream_info(path: str) -> dict:
    """Parse an .ncv file without running the model: header fields, per-frame types and sizes, and bitrate."""
    from bitstream import StreamReader

    with _open_ncv(path) as fileobj, _stream_errors(path):
        reader = StreamReader(fileobj)
        header = reader.header
        header_bytes = fileobj.tell()
        frames = []
        while True:
            before = fileobj.tell()
            packet = reader.read()
            if packet is None:
                break
            frames.append({"index": len(frames), "type": packet.frame_type.name,
                           "bytes": fileobj.tell() - before, "chunks": [len(c) for c in packet.chunks]})
        total = fileobj.tell()
    n = len(frames)
    fps = header.fps
    duration = n / fps if n else Fraction(0)
    pixels = n * header.width * header.height
    return {
        "file": str(path), "model_name": header.model_name, "model_hash": header.model_hash.hex(),
        "width": header.width, "height": header.height, "fps": str(fps), "fps_float": float(fps),
        "frame_count": n, "header_frame_count": header.frame_count, "quality": header.quality, "gop": header.gop,
        "duration_s": float(duration), "total_bytes": total, "header_bytes": header_bytes,
        "kbit_per_s": total * 8 / float(duration) / 1000 if n else 0.0,
        "bits_per_pixel": total * 8 / pixels if pixels else 0.0,
        "i_frames": sum(f["type"] == "I" for f in frames), "p_frames": sum(f["type"] == "P" for f in frames),
        "frames": frames,
    }


def _cmd_info(args: argparse.Namespace) -> int:
    info = stream_info(args.input)
    if args.json:
        print(json.dumps(info))
        return 0
    count = info["frame_count"]
    frames_text = f"{count}" + (f" (header says {info['header_frame_count']})"
                                if info["header_frame_count"] not in (0, count) else "")
    rows = [
        ("file", info["file"]),
        ("model", f"{info['model_name']} (weights sha256 {info['model_hash']}...)"),
        ("size", f"{info['width']}x{info['height']}"),
        ("frame rate", f"{_fps_text(Fraction(info['fps']))} fps"),
        ("frames", f"{frames_text}: {info['i_frames']} I, {info['p_frames']} P"),
        ("quality", str(info["quality"])),
        ("gop", str(info["gop"])),
        ("duration", f"{info['duration_s']:.3f} s"),
        ("total size", f"{info['total_bytes']:,} bytes (header {info['header_bytes']} bytes)"),
        ("bitrate", f"{info['kbit_per_s']:.2f} kbit/s, {info['bits_per_pixel']:.4f} bits/pixel"),
    ]
    for name, value in rows:
        print(f"{name:<11} {value}")
    print()
    print(f"{'frame':>6}  type  {'bytes':>9}")
    for frame in info["frames"]:
        print(f"{frame['index']:>6}  {frame['type']:<4}  {frame['bytes']:>9,}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from neuralcodec.demo import run_demo

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out} exists and is not a folder")
    run_demo(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
