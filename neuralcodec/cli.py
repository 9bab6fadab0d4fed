"""The `ncodec` command line: encode videos to .ncv, decode them, inspect streams, and run the demo."""

from __future__ import annotations

import argparse
import json
import io
import itertools
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from fractions import Fraction
from pathlib import Path

EXAMPLES = """\
examples:
  ncodec encode clip.mp4 -o clip.ncv                 encode at the default quality
  ncodec encode clip.y4m -o clip.ncv --quality 5 --gop 32
  ncodec encode clip.mp4 -o clip.ncv --bitrate 300k  rate control: the file lands on 300 kbit/s
  ncodec encode clip.mp4 -o clip.ncv --preset slow   more encoder work, fewer bits at equal PSNR (same decoder)
  ncodec encode frames/ -o clip.ncv                  a folder of PNG frames (30 fps)
  ncodec decode clip.ncv -o clip.mkv                 lossless FFV1 RGB (also .y4m, .mp4, or a folder/ of PNGs)
  ncodec info clip.ncv --json                        stream parameters, frame sizes, bitrate
  ncodec models                                      the shipped models, their size, speed and training
  ncodec demo -o ncodec-demo                         compare with x264 on the built-in sample clip
  ffmpeg -i x.mp4 -f yuv4mpegpipe - | ncodec encode - -o x.ncv      '-' is standard input or output
  ncodec decode x.ncv -o - | ffplay -                                y4m on standard output (--format mkv)

'-' as INPUT reads standard input, as OUTPUT writes standard output (messages then go to stderr only).
--force replaces only a regular file or a folder of ncodec's own frame_NNNNNN.png files, never another folder,
a device, a FIFO, a socket or a link. Decoding refuses streams over its budget (default 8192x4320 pixels per
frame and 2^40 decoded samples in all) before allocating anything: see --max-pixels and --max-samples.

exit status: 0 success, 1 error (bad input, corrupt or over-budget stream, model mismatch, existing output),
2 usage error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 129 hung up (SIGHUP).
"""
# Suffixes that would make an .ncv stream look like something else.
_NOT_NCV_SUFFIXES = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".y4m", ".png", ".jpg", ".jpeg"}


_STREAM_KINDS = ("y4m", "mkv")  # formats that can be written to a pipe
PRESET_NAMES = ("fast", "medium", "slow", "veryslow")  # neuralcodec.codec.PRESETS (not imported: torch)


class CliError(Exception):
    """An error reported as one `ncodec: error: ...` line with exit status 1."""


def printable(text: object) -> str:
    """``text`` safe for a terminal: control, format and other non-printable characters (escape sequences,
    newlines, bidi overrides) are shown as Python escapes (\\x1b, \\n, \\u202e)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return printable(" ".join(text.split()))


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


def _scenecut(text: str) -> float:
    """A scene-cut threshold in dB: a number in 0..100 (0 disables scene-cut detection)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of dB in 0..100, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"expected a number of dB in 0..100, got {text!r}")
    return value


def _bitrate(text: str) -> float:
    """Bits per second: 300k, 1.5M or 250000 (k = 1000, M = 1000000)."""
    from neuralcodec.ratecontrol import parse_bitrate

    try:
        return parse_bitrate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _pixel_count(text: str) -> int:
    """A positive pixel count: an integer, or WIDTHxHEIGHT."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or WIDTHxHEIGHT, got {text!r}")
    return parts[0] * (parts[1] if len(parts) == 2 else 1)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ncodec` (subcommands encode, decode, info, demo)."""
    parser = argparse.ArgumentParser(
        prog="ncodec", description="ncodec: a learned video codec (.ncv streams).", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ncodec {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    enc = sub.add_parser("encode", help="encode a video (file or PNG folder) to .ncv",
                         description="Encode a video file (anything PyAV decodes) or a folder of PNG frames.")
    enc.add_argument("input", metavar="INPUT", help="video file, PNG folder, or - for standard input (y4m or any "
                                                    "stream PyAV can read without seeking)")
    enc.add_argument("-o", "--output", required=True, metavar="OUTPUT.ncv", help="- writes to standard output")
    rate = enc.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=int, metavar="Q", help="quality level (default: the model's middle level)")
    rate.add_argument("--bitrate", type=_bitrate, metavar="RATE",
                      help="target bitrate in bits/s (300k, 1.5M) instead of a quality: rate control picks a "
                           "quality per frame so that the file lands on it")
    enc.add_argument("--preset", choices=PRESET_NAMES, default=None,
                     help="encoder effort: motion search and, from slow on, a rate-distortion search over "
                          "refined latents per frame; the decoder is the same (default: medium)")
    enc.add_argument("--gop", type=_positive_int, metavar="N",
                     help="longest run of frames between I-frames (default: 32)")
    enc.add_argument("--scenecut", type=_scenecut, metavar="DB",
                     help="also start an I-frame where the motion-compensated prediction is DB dB worse than the "
                          "last P-frame's (default: 6; 0 disables)")
    enc.add_argument("--model", metavar="NAME_OR_PATH", help="registry name or .safetensors path (default: shipped)")
    enc.add_argument("--force", action="store_true", help="replace OUTPUT if it is a regular file")
    enc.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    enc.set_defaults(func=_cmd_encode, parser=enc)

    dec = sub.add_parser("decode", help="decode .ncv to .y4m, .mkv, .mp4 or a PNG folder",
                         description="Decode an .ncv stream. Output by suffix: .y4m (yuv444p), .mkv (lossless FFV1 "
                                     "RGB), .mp4 (H.264 CRF 18 yuv420p; odd sizes padded to even), or a directory "
                                     "(path ending in '/' or without suffix) of PNG frames. Streams over the budget "
                                     "(--max-pixels, --max-samples) are refused before anything is allocated.")
    dec.add_argument("input", metavar="INPUT.ncv", help="- reads the stream from standard input")
    dec.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                     help="- writes y4m (or --format mkv) to standard output")
    dec.add_argument("--format", choices=("y4m", "mkv", "mp4", "png"),
                     help="output format when the suffix cannot say (default for -: y4m)")
    dec.add_argument("--max-pixels", type=_pixel_count, metavar="N|WxH",
                     help="largest frame to decode, in pixels (default 35,389,440 = 8192x4320)")
    dec.add_argument("--max-samples", type=_positive_int, metavar="N",
                     help="most decoded samples, frames x pixels x 3 (default 1,099,511,627,776 = 2^40)")
    dec.add_argument("--force", action="store_true",
                     help="replace OUTPUT if it is a regular file or a folder of ncodec's own PNG frames")
    dec.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    dec.set_defaults(func=_cmd_decode, parser=dec)

    info = sub.add_parser("info", help="show stream parameters, frame types and sizes, bitrate",
                          description="Show an .ncv stream's parameters, per-frame types and sizes, and bitrate.")
    info.add_argument("input", metavar="INPUT.ncv")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_cmd_info, parser=info)

    models = sub.add_parser("models", help="list the shipped models",
                            description="List the shipped models: name, version, parameters, decoder MAC per pixel, "
                                        "quality levels, training steps and hours.")
    models.add_argument("--json", action="store_true", help="print one JSON object (the cards: load_codec().card)")
    models.set_defaults(func=_cmd_models, parser=models)

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
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP while an output was open (io.Interrupted)
        signum = getattr(exc, "signum", 2)
        print("ncodec: interrupted" if signum == 2 else f"ncodec: interrupted by signal {signum}", file=sys.stderr)
        return 128 + signum
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


# ---------------------------------------------------------------- standard input and output


def _binary_stdout():
    """Standard output for data; refuses a terminal (binary video would garble it)."""
    if sys.stdout.isatty():
        raise CliError("refusing to write binary data to a terminal: redirect or pipe standard output")
    sys.stdout.flush()
    return sys.stdout.buffer


def _check_stdin() -> None:
    if sys.stdin.isatty():
        raise CliError("standard input is a terminal: pipe or redirect the input into ncodec")


def _say(args: argparse.Namespace, text: str) -> None:
    """A summary line: on stdout, or on stderr when stdout carries the data."""
    if not args.quiet:
        print(printable(text), file=sys.stderr if args.output == "-" else sys.stdout)


class _Replay(io.RawIOBase):
    """Bytes already read (a stream header) followed by the rest of a non-seekable stream."""

    def __init__(self, head: bytes, rest) -> None:
        super().__init__()
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._rest.readinto(buffer)


# ---------------------------------------------------------------- progress


class _Progress:
    """A tqdm bar on stderr (frames, frames/s, kbit/s over the last second of video); off if quiet or not a TTY."""

    def __init__(self, total: int, fps: Fraction, quiet: bool, desc: str):
        from tqdm import tqdm

        self.fps = float(fps)
        self.count = 0
        self.window: deque[int] = deque(maxlen=max(1, round(self.fps)))
        self.bar = tqdm(total=total or None, unit="frame", desc=desc, file=sys.stderr, dynamic_ncols=True,
                        disable=quiet or not sys.stderr.isatty(), leave=False)

    def update(self, nbytes: int) -> None:
        self.window.append(nbytes)
        kbps = sum(self.window) * 8 * self.fps / len(self.window) / 1000
        self.bar.set_postfix_str(f"{kbps:.1f} kbit/s", refresh=False)
        self.bar.update(1)
        self.count += 1

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
    from neuralcodec.io import atomic_output, check_output, open_video

    to_stdout = args.output == "-"
    target = Path(args.output)
    if not to_stdout and (args.output.endswith(("/", os.sep)) or target.suffix.lower() in _NOT_NCV_SUFFIXES
                          or target.is_dir()):
        args.parser.error(f"OUTPUT must be an .ncv file, got {args.output!r}")
    if not to_stdout:
        check_output(target, args.force)
    if args.input == "-":
        _check_stdin()
    info, frames = open_video(args.input)
    codec = neuralcodec.load_codec(args.model) if args.model else neuralcodec.load_codec()
    quality = codec.default_quality if args.quality is None else args.quality
    if args.bitrate is None and quality not in codec.qualities:
        levels = ", ".join(str(q) for q in codec.qualities)
        args.parser.error(f"argument --quality: {quality} is not a level of model {printable(codec.name)} "
                          f"(choose from {levels})")
    first = next(frames, None)
    if first is None:  # before anything is written, to a file or to a pipe
        raise CliError(f"{args.input}: no frames to encode")
    start = time.perf_counter()

    def encode(fileobj) -> tuple[int, int]:
        encoder = codec.stream_encoder(fileobj, info.width, info.height, fps=info.fps,
                                       quality=None if args.bitrate else quality, gop=args.gop, frame_count=0,
                                       scenecut=args.scenecut, preset=args.preset, bitrate=args.bitrate,
                                       frames_hint=info.frame_count)
        progress = _Progress(info.frame_count, info.fps, args.quiet, "encode")
        try:
            for frame in itertools.chain([first], frames):
                progress.update(encoder.write(frame))
        finally:
            progress.close()
        encoder.close()
        return progress.count, encoder.writer.bytes_written

    if to_stdout:
        count, size = encode(_binary_stdout())
        sys.stdout.buffer.flush()
    else:
        with atomic_output(target, args.force) as tmp, open(tmp, "wb") as fileobj:
            count, size = encode(fileobj)
    elapsed = time.perf_counter() - start
    mode = f"quality {quality}" if args.bitrate is None else f"target {args.bitrate / 1000:g} kbit/s"
    _say(args, f"{args.output}: {count} frames {info.width}x{info.height} @ {_fps_text(info.fps)} fps, "
               f"model {codec.name} {mode}, {_rate_text(size, count, info.width, info.height, info.fps)} "
               f"({elapsed:.1f} s, {count / max(elapsed, 1e-9):.1f} frames/s)")
    return 0


def _open_ncv(path: str):
    """Open an .ncv input for reading (``-``: standard input), with a one-line error if it is missing or not a
    file."""
    if path == "-":
        _check_stdin()
        return nullcontext(sys.stdin.buffer)  # read, never closed
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
    """Name the input file in errors about corrupt, truncated or over-budget .ncv data."""
    from bitstream import BitstreamError

    try:
        yield
    except BitstreamError as exc:
        raise CliError(f"{'standard input' if path == '-' else path}: {_one_line(exc)}") from None


def _decode_kind(args: argparse.Namespace) -> str:
    from neuralcodec.io import output_kind

    if args.output == "-":
        kind = args.format or "y4m"
        if kind not in _STREAM_KINDS:
            args.parser.error(f"argument --format: {kind} cannot be written to standard output (use y4m or mkv)")
        return kind
    try:
        return args.format or output_kind(args.output)
    except ValueError as exc:
        args.parser.error(f"{exc} (or give --format)")


def _cmd_decode(args: argparse.Namespace) -> int:
    import neuralcodec
    from bitstream import DecodeLimits, StreamReader
    from neuralcodec.io import atomic_output, check_output, open_writer

    kind = _decode_kind(args)
    limits = DecodeLimits.of(None, args.max_pixels)
    if args.max_samples is not None:
        limits = DecodeLimits(limits.max_pixels, args.max_samples)
    to_stdout = args.output == "-"
    target = Path(args.output.rstrip("/" + os.sep) or args.output)
    if not to_stdout:
        check_output(target, args.force)
    start = time.perf_counter()
    with _open_ncv(args.input) as fileobj, _stream_errors(args.input):
        header = StreamReader(fileobj, limits).header  # the budget, before a model is even loaded
        head = header.to_bytes()
        codec = neuralcodec.load_codec_for_stream(io.BytesIO(head))
        decoder = codec.stream_decoder(io.BufferedReader(_Replay(head, fileobj)), limits)
        frames = iter(decoder)
        first = next(frames, None)
        if first is None:
            raise CliError(f"{args.input}: the stream has no frames; nothing written")
        progress = _Progress(header.frame_count, header.fps, args.quiet, "decode")
        try:
            if to_stdout:
                sink = _binary_stdout()
                with open_writer(sink, header.width, header.height, header.fps, kind=kind) as writer:
                    _decode_into(writer, decoder, first, frames, progress)
                sink.flush()
            else:
                with atomic_output(target, args.force, directory=(kind == "png")) as tmp, \
                        open_writer(tmp, header.width, header.height, header.fps, kind=kind) as writer:
                    _decode_into(writer, decoder, first, frames, progress)
        finally:
            progress.close()
    elapsed = time.perf_counter() - start
    count = progress.count
    _say(args, f"{args.output if to_stdout else target}: {count} frames {header.width}x{header.height} @ "
               f"{_fps_text(header.fps)} fps ({elapsed:.1f} s, {count / max(elapsed, 1e-9):.1f} frames/s)")
    return 0


def _decode_into(writer, decoder, first, frames: Iterator, progress: "_Progress") -> None:
    position = decoder.reader.header_size
    for frame in itertools.chain([first], frames):
        writer.write(frame)
        progress.update(decoder.reader.position - position)
        position = decoder.reader.position


def _fps_text(fps: Fraction) -> str:
    return str(fps.numerator) if fps.denominator == 1 else f"{fps} (~{float(fps):.3f})"


class StreamScan:
    """One pass over an .ncv file without running the model or keeping packets: iterate for the per-frame records
    ({index, type, bytes, chunks}); afterwards ``summary()`` has the totals. Memory does not grow with the file."""

    def __init__(self, reader, path: str):
        self.reader, self.path = reader, path
        self.header = reader.header
        self.frames = self.i_frames = 0
        self.total = reader.header_size

    def __iter__(self) -> Iterator[dict]:
        reader = self.reader
        while True:
            before = reader.position
            packet = reader.read()
            if packet is None:
                return
            self.frames += 1
            self.i_frames += packet.frame_type.name == "I"
            self.total = reader.position
            quality = self.header.quality if packet.quality is None else packet.quality
            yield {"index": self.frames - 1, "type": packet.frame_type.name, "quality": quality,
                   "bytes": reader.position - before, "chunks": [len(c) for c in packet.chunks]}

    def header_fields(self) -> dict:
        h = self.header
        return {"file": str(self.path), "model_name": h.model_name, "model_hash": h.model_hash.hex(),
                "width": h.width, "height": h.height, "fps": str(h.fps), "fps_float": float(h.fps),
                "header_frame_count": h.frame_count, "quality": h.quality, "gop": h.gop,
                "format_version": h.version, "header_bytes": self.reader.header_size}

    def summary(self) -> dict:
        n, h = self.frames, self.header
        duration = n / h.fps if n else Fraction(0)
        pixels = n * h.width * h.height
        return {"frame_count": n, "duration_s": float(duration), "total_bytes": self.total,
                "kbit_per_s": self.total * 8 / float(duration) / 1000 if n else 0.0,
                "bits_per_pixel": self.total * 8 / pixels if pixels else 0.0,
                "i_frames": self.i_frames, "p_frames": n - self.i_frames}


@contextmanager
def _scan(path: str) -> Iterator[StreamScan]:
    from bitstream import StreamReader

    with _open_ncv(path) as fileobj, _stream_errors(path):
        yield StreamScan(StreamReader(fileobj), path)


def stream_info(path: str) -> dict:
    """Parse an .ncv file without running the model: header fields, per-frame types and sizes, and bitrate
    (all frames in one dict: for very long streams, `ncodec info` streams instead)."""
    with _scan(path) as scan:
        frames = list(scan)
        return {**scan.header_fields(), **scan.summary(), "frames": frames}


def _cmd_info(args: argparse.Namespace) -> int:
    with _scan(args.input) as scan:
        if args.json:  # one JSON object, written as it is read: the frames first, the totals after them
            head = json.dumps(scan.header_fields())
            sys.stdout.write(head[:-1] + ', "frames": [')
            for f in scan:  # (formatted by hand: json.dumps per frame would double the time of a long stream)
                sys.stdout.write(f'{", " if f["index"] else ""}{{"index": {f["index"]}, "type": "{f["type"]}", '
                                 f'"quality": {f["quality"]}, "bytes": {f["bytes"]}, '
                                 f'"chunks": [{", ".join(map(str, f["chunks"]))}]}}')
            sys.stdout.write("], " + json.dumps(scan.summary())[1:] + "\n")
            return 0
        info = scan.header_fields()
        rows = [
            ("file", info["file"]),
            ("model", f"{info['model_name']} (weights sha256 {info['model_hash']}...)"),
            ("size", f"{info['width']}x{info['height']}"),
            ("frame rate", f"{_fps_text(Fraction(info['fps']))} fps"),
            ("quality", str(info["quality"]) if info["format_version"] == 1 or info["quality"]
             else "per frame (rate control)"),
            ("gop", str(info["gop"])),
        ]
        for name, value in rows:
            print(printable(f"{name:<11} {value}"))
        print()
        print(f"{'frame':>6}  type  quality  {'bytes':>9}")
        for frame in scan:
            print(f"{frame['index']:>6}  {frame['type']:<4}  {frame['quality']:>7}  {frame['bytes']:>9,}")
        info = {**info, **scan.summary()}
    count = info["frame_count"]
    frames_text = f"{count}" + (f" (header says {info['header_frame_count']})"
                                if info["header_frame_count"] not in (0, count) else "")
    print()
    for name, value in [
        ("frames", f"{frames_text}: {info['i_frames']} I, {info['p_frames']} P"),
        ("duration", f"{info['duration_s']:.3f} s"),
        ("total size", f"{info['total_bytes']:,} bytes (header {info['header_bytes']} bytes)"),
        ("bitrate", f"{info['kbit_per_s']:.2f} kbit/s, {info['bits_per_pixel']:.4f} bits/pixel"),
    ]:
        print(f"{name:<11} {value}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    import neuralcodec
    from neuralcodec.registry import DEFAULT_MODEL, REGISTRY

    cards = [{**neuralcodec.load_codec(name).card, "default": name == DEFAULT_MODEL} for name in REGISTRY]
    if args.json:
        print(json.dumps({"models": cards}))
        return 0
    for c in cards:
        t = c["training"]
        kmac = c["decoder_kmac_per_pixel"]
        hours = (f"{t['cpu_hours']:.2f} CPU hours" if t["cpu_hours"] is not None else "CPU hours not recorded") + \
            (f", {t['gpu_hours']:.2f} GPU hours" if t["gpu_hours"] else "")
        for line in (f"{c['name']}{' (default)' if c['default'] else ''}  version {c['version'] or 'unknown'}  "
                     f"sha256 {c['sha256'][:16]}...",
                     f"  {c['parameters'] / 1e6:.2f} M parameters, decoder {kmac['I']:.1f} / {kmac['P']:.1f} kMAC "
                     f"per pixel (I / P), qualities {c['qualities'][0]}..{c['qualities'][-1]} (default "
                     f"{c['default_quality']})",
                     f"  training: {t['steps'] if t['steps'] is not None else 'unknown'} steps, {hours}"):
            print(printable(line))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from neuralcodec.demo import run_demo

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out} exists and is not a folder")
    run_demo(out, log=lambda text: print(printable(text)))  # the model's name comes from its file
    return 0


if __name__ == "__main__":
    sys.exit(main())
