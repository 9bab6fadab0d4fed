"""Video file I/O: read any PyAV-decodable video or PNG folder as RGB frames; write .y4m, .mkv, .mp4 or a PNG folder.

Reading (``open_video``) and writing (``open_writer``) both stream one frame at a time.

Output formats, chosen by the path's suffix (see ``output_kind``):

- ``.y4m``: raw YUV 4:4:4 (``yuv444p``, libswscale's default BT.601 limited-range matrix) in the yuv4mpegpipe muxer.
  No chroma subsampling, only the RGB->YUV rounding is lossy.
- ``.mkv``: FFV1 in Matroska with pixel format ``bgr0``: lossless RGB.
- ``.mp4``: H.264 (libx264, preset medium, CRF 18, ``yuv420p``) for viewing. 4:2:0 needs even sizes, so an odd
  width or height is padded to the next even number by repeating the last column or row (the only format that
  does not keep the size exactly).
- a directory (a path that ends in ``/``, has no suffix, or is an existing directory): PNG frames
  ``frame_000001.png``, ``frame_000002.png``, ...

Every output ncodec writes (CLI, API, demo, export, training) goes through ``atomic_output``: a temporary created
exclusively beside the destination, fsync, then an atomic rename. An existing destination is replaced only with
``force``, and then only if it is a regular file or a folder ncodec wrote itself (``is_frame_folder``); never another
folder, a device, a FIFO, a socket or a symbolic link. The temporary is removed on every exit path, SIGTERM and SIGHUP
included (they are turned into ``Interrupted`` exceptions while an output is open).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


class _LazyModule:
    """A module imported on first attribute access: PyAV is needed only to read and write video, so the atomic
    writer and the rest of this module (used by training and export) also work where PyAV is not installed."""

    def __init__(self, name: str):
        self._name, self._module = name, None

    def __getattr__(self, attr: str):
        if self._module is None:
            import importlib
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


av = _LazyModule("av")

__all__ = ["VideoInfo", "InputError", "OutputError", "Interrupted", "FrameWriter", "open_video", "open_writer",
           "output_kind", "OUTPUT_KINDS", "STDIO", "atomic_output", "check_output", "is_frame_folder"]

DEFAULT_FPS = Fraction(30, 1)
OUTPUT_KINDS = ("y4m", "mkv", "mp4", "png")
_SUFFIX_KINDS = {".y4m": "y4m", ".mkv": "mkv", ".mp4": "mp4"}
# Demuxers/decoders that turn arbitrary text or binary files into "video" (ANSI art etc.): refuse them.
_NOT_VIDEO_CODECS = {"ansi", "bintext", "xbin", "idf", "tty"}
_MAX_SIDE = 16384
STDIO = "-"  # as an input: standard input; as an output: standard output
_FRAME_NAME = re.compile(r"frame_\d{6,}\.png")
_MP4_CRF = 18


@dataclass(frozen=True)
class VideoInfo:
    """Size, frame rate and frame count (0 if unknown) of a video."""

    width: int
    height: int
    fps: Fraction
    frame_count: int


class InputError(ValueError):
    """A missing, unreadable or non-video input, with a one-line message."""


class OutputError(ValueError):
    """An output that must not be written or replaced (exists, not ours, missing folder), with a one-line message."""


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived while an output was open (raised so that its temporary is removed)."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _check_fps(fps: Fraction | int | float | None) -> Fraction:
    if fps is None:
        return DEFAULT_FPS
    fps = Fraction(fps).limit_denominator(1_000_000)
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return fps


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    """Any pixel format (yuv, 10-bit, gray, rgba, palette...) to (H, W, 3) uint8 RGB; alpha is dropped."""
    return frame.to_ndarray(format="rgb24")


def open_video(path: str | os.PathLike, fps: Fraction | None = None) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """Open a video file (anything PyAV decodes) or a directory of PNG frames; frames are decoded lazily.

    ``fps`` overrides the frame rate (for PNG folders it defaults to 30/1). Raises InputError for a missing,
    unreadable or non-video input. The iterator yields (H, W, 3) uint8 RGB frames one at a time.
    """
    if os.fspath(path) == STDIO:
        return _open_container(sys.stdin.buffer, fps, name="standard input")
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        return _open_png_dir(path, fps)
    return _open_container(path, fps)


def _open_png_dir(path: Path, fps: Fraction | None) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    try:
        files = sorted((p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file()),
                       key=lambda p: _natural_key(p.name))
    except OSError as exc:
        raise InputError(f"cannot read directory {path}: {_one_line(exc)}") from None
    if not files:
        raise InputError(f"no .png frames in directory {path}")
    first = _read_png(files[0])
    height, width = first.shape[:2]
    info = VideoInfo(width, height, _check_fps(fps), len(files))

    def frames() -> Iterator[np.ndarray]:
        yield first
        for file in files[1:]:
            frame = _read_png(file)
            if frame.shape != first.shape:
                raise InputError(f"{file.name} is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"other frames are {width}x{height}")
            yield frame

    return info, frames()


def _read_png(file: Path) -> np.ndarray:
    try:
        with av.open(str(file)) as container:
            for frame in container.decode(video=0):
                return _rgb(frame)
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"cannot read {file}: {_one_line(exc)}") from None
    raise InputError(f"cannot read {file}: no image in file")


def _open_container(source, fps: Fraction | None, name: str | None = None) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    path = name or source  # what error messages call the input
    try:
        container = av.open(source if name else str(source))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: not a video file ({_one_line(exc)})") from None
    try:
        if not container.streams.video:
            raise InputError(f"cannot read {path}: no video stream")
        stream = container.streams.video[0]
        if stream.codec_context.name in _NOT_VIDEO_CODECS:
            raise InputError(f"cannot read {path}: not a video file")
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        try:
            first = next(decoded, None)
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"cannot decode {path}: {_one_line(exc)}") from None
        if first is None:
            raise InputError(f"cannot read {path}: no decodable video frames")
        width, height = first.width, first.height
        if not (1 <= width <= _MAX_SIDE and 1 <= height <= _MAX_SIDE):
            raise InputError(f"cannot read {path}: frame size {width}x{height} out of range")
        rate = fps if fps is not None else (stream.average_rate or stream.guessed_rate or stream.base_rate)
        info = VideoInfo(width, height, _check_fps(rate), max(int(stream.frames or 0), 0))
    except BaseException:
        container.close()
        raise
    return info, _container_frames(path, container, decoded, first)


def _container_frames(path: Path, container, decoded, first: av.VideoFrame) -> Iterator[np.ndarray]:
    index = 0
    try:
        frame = first
        while frame is not None:
            if (frame.width, frame.height) != (first.width, first.height):
                raise InputError(f"{path}: frame {index} is {frame.width}x{frame.height}, "
                                 f"the video started at {first.width}x{first.height}")
            yield _rgb(frame)
            index += 1
            raise_pending()
            try:
                frame = next(decoded, None)
            except (av.FFmpegError, OSError) as exc:
                raise InputError(f"cannot decode {path} at frame {index}: {_one_line(exc)}") from None
    finally:
        container.close()


def output_kind(path: str | os.PathLike) -> str:
    """Output format for a path: 'y4m', 'mkv', 'mp4' or 'png' (a directory of PNG frames); ValueError otherwise.

    A path that ends with a separator, has no suffix, or is an existing directory means a PNG directory.
    """
    text = os.fspath(path)
    p = Path(text)
    if text.endswith(("/", os.sep)) or p.is_dir() or p.suffix == "":
        return "png"
    kind = _SUFFIX_KINDS.get(p.suffix.lower())
    if kind is None:
        raise ValueError(f"unsupported output format {p.suffix!r}: use .y4m, .mkv, .mp4 or a directory")
    return kind


class FrameWriter:
    """Writes (height, width, 3) uint8 RGB frames one at a time; close() finishes the file."""

    def __init__(self, width: int, height: int, fps: Fraction):
        self.width, self.height, self.fps = width, height, fps
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one frame."""
        raise_pending()
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.shape != (self.height, self.width, 3):
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) uint8 frame, "
                             f"got {frame.shape} {frame.dtype}")
        self._write(np.ascontiguousarray(frame))
        self.frames_written += 1

    def _write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the output (flush encoders, write trailers)."""

    def abort(self) -> None:
        """Stop writing after an error, without flushing (the caller deletes the partial output)."""
        self.close()

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _PngDirWriter(FrameWriter):
    def __init__(self, path: Path, width: int, height: int, fps: Fraction):
        super().__init__(width, height, fps)
        path.mkdir(exist_ok=True)
        self.path = path

    def _write(self, frame: np.ndarray) -> None:
        Image.fromarray(frame, "RGB").save(self.path / f"frame_{self.frames_written + 1:06d}.png")


class _AvWriter(FrameWriter):
    """One video stream in a PyAV container; frames get consecutive timestamps at 1/fps."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, kind: str):
        super().__init__(width, height, fps)
        self._pad = (0, 0)
        if kind == "y4m":
            fmt, codec, pix_fmt, options = "yuv4mpegpipe", "rawvideo", "yuv444p", {}
        elif kind == "mkv":
            fmt, codec, pix_fmt = "matroska", "ffv1", "bgr0"
            # FFV1 splits frames into slices by default, which it cannot do for a 1-pixel-wide frame.
            options = {"slices": "1"} if min(width, height) < 16 else {}
        else:
            fmt, codec, pix_fmt = "mp4", "libx264", "yuv420p"
            options = {"crf": str(_MP4_CRF), "preset": "medium"}
            self._pad = (height % 2, width % 2)
        self._pix_fmt = pix_fmt
        self._container = av.open(path if hasattr(path, "write") else str(path), "w", format=fmt)
        try:
            self._stream = self._container.add_stream(codec, rate=fps)
            self._stream.width = width + self._pad[1]
            self._stream.height = height + self._pad[0]
            self._stream.pix_fmt = pix_fmt
            self._stream.time_base = Fraction(1, 1) / fps
            self._stream.codec_context.time_base = Fraction(1, 1) / fps
            self._stream.options = options
        except BaseException:
            self._container.close()
            raise
        self._closed = False

    def _write(self, frame: np.ndarray) -> None:
        if any(self._pad):
            frame = np.pad(frame, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=self._pix_fmt)
        vf.pts = self.frames_written
        vf.time_base = Fraction(1, 1) / self.fps
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except (av.FFmpegError, OSError):
                pass


def open_writer(path, width: int, height: int, fps: Fraction, kind: str | None = None) -> FrameWriter:
    """Open a frame writer; the format comes from ``kind`` (one of OUTPUT_KINDS) or else from the path's suffix.

    ``path`` may also be a writable binary file object (e.g. ``sys.stdout.buffer``) for the streamable kinds
    'y4m' and 'mkv'; ``kind`` is then required.
    """
    if hasattr(path, "write"):
        if kind not in ("y4m", "mkv"):
            raise ValueError(f"cannot write {kind or 'an unnamed format'} to a stream: use y4m or mkv")
    if not (isinstance(width, int) and isinstance(height, int) and 1 <= width <= _MAX_SIDE
            and 1 <= height <= _MAX_SIDE):
        raise ValueError(f"frame size must be 1..{_MAX_SIDE} pixels per side, got {width}x{height}")
    fps = _check_fps(fps)
    kind = kind or output_kind(path)
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {kind!r}: use one of {', '.join(OUTPUT_KINDS)}")
    if kind == "png":
        return _PngDirWriter(Path(path), width, height, fps)
    return _AvWriter(path if hasattr(path, "write") else Path(path), width, height, fps, kind)


# ---------------------------------------------------------------- safe outputs


def is_frame_folder(path: str | os.PathLike) -> bool:
    """True if ``path`` is a real folder (not a link) holding only regular files named frame_NNNNNN.png, at least
    one: a folder of PNG frames as ncodec writes it, the only kind of folder ``--force`` may replace."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        found = False
        with os.scandir(path) as entries:
            for entry in entries:
                if not (_FRAME_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)):
                    return False
                found = True
        return found
    except OSError:
        return False


def _what(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symbolic link"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISDIR, "folder")):
        if test(mode):
            return name
    return "special file"


def _holds_cwd(path: Path) -> bool:
    try:
        here, there = Path.cwd().resolve(), path.resolve()
    except OSError:
        return True
    return here == there or there in here.parents


def check_output(dst: str | os.PathLike, force: bool = False) -> None:
    """Raise OutputError unless ``dst`` may be written: its folder exists, and it does not exist or (with ``force``)
    is a regular file or a folder of ncodec's own PNG frames (not the current folder or one above it)."""
    dst = Path(dst)
    if not dst.parent.is_dir():
        raise OutputError(f"output folder does not exist: {dst.parent}")
    try:
        mode = os.lstat(dst).st_mode
    except FileNotFoundError:
        return
    if not force:
        raise OutputError(f"{dst} exists (use --force to overwrite)")
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        if is_frame_folder(dst) and not _holds_cwd(dst):
            return
        raise OutputError(f"{dst} is a folder that ncodec did not write (--force replaces only a folder holding "
                          f"nothing but its frame_NNNNNN.png files); left untouched")
    raise OutputError(f"{dst} is a {_what(mode)}, not a regular file (--force replaces only regular files and "
                      f"ncodec's frame folders); left untouched")


_pending_signal: int | None = None   # the signal being handled, until its block has unwound (see raise_pending)


def _raise_interrupted(signum: int, frame) -> None:
    global _pending_signal
    for sig in _CAUGHT:  # a second signal must not interrupt the clean-up
        signal.signal(sig, signal.SIG_IGN)
    _pending_signal = signum
    raise Interrupted(signum)


def raise_pending() -> None:
    """Raise Interrupted again if a SIGINT/SIGTERM/SIGHUP was handled and its exception has not unwound its block.

    PyAV calls Python file objects (standard input or output) from C and drops any exception that is not an
    Exception: a signal that arrives inside such a read or write raises Interrupted there, and it is lost. The
    readers and writers here call this once per frame, so the interrupt still stops the work (on an endless pipe
    it would otherwise run forever, the signal being ignored from then on)."""
    if _pending_signal is not None:
        raise Interrupted(_pending_signal)


_CAUGHT = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _default_action(sig: int) -> bool:
    """Is sig left at its default (SIG_DFL, or Python's own KeyboardInterrupt for SIGINT), not ignored or taken?"""
    handler = signal.getsignal(sig)
    return handler == signal.SIG_DFL or (sig == signal.SIGINT and handler is signal.default_int_handler)


@contextmanager
def _signals_raise() -> Iterator[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP (if left at their default action) raise Interrupted.

    SIGINT too: Python's own KeyboardInterrupt can be lost inside a PyAV callback just like Interrupted (see
    raise_pending), and then only a second Ctrl-C stopped the work."""
    global _pending_signal
    installed = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _CAUGHT:
            if _default_action(sig):
                installed[sig] = signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, old in installed.items():
            signal.signal(sig, old)
        if installed:
            _pending_signal = None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _discard(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _fsync(path: Path, directory: bool) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0) | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder
        if not directory:
            raise
    finally:
        os.close(fd)


def _sync_tree(tmp: Path, directory: bool) -> None:
    if directory:
        with os.scandir(tmp) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    _fsync(Path(entry.path), False)
    _fsync(tmp, directory)


def _commit(tmp: Path, dst: Path, force: bool, directory: bool) -> None:
    """Move the finished temporary onto dst, re-checking dst at the last moment."""
    check_output(dst, force)
    try:
        mode = os.lstat(dst).st_mode
    except FileNotFoundError:
        mode = None
    if mode is None:
        if directory:
            os.rename(tmp, dst)
        else:
            try:
                os.link(tmp, dst)  # never replaces: fails if dst appeared meanwhile
            except FileExistsError:
                raise OutputError(f"{dst} exists (use --force to overwrite)") from None
            except OSError:  # a file system without hard links
                os.rename(tmp, dst)
            else:
                os.unlink(tmp)
    elif stat.S_ISREG(mode) and not directory:
        os.replace(tmp, dst)
    else:  # a folder is involved: move the old one aside, check it is still ours, move the new one in
        aside = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old", dir=dst.parent))
        old = aside / "old"
        os.rename(dst, old)
        if not (stat.S_ISREG(os.lstat(old).st_mode) or is_frame_folder(old)):
            os.rename(old, dst)
            os.rmdir(aside)
            raise OutputError(f"{dst} changed while being replaced; left untouched")
        try:
            os.rename(tmp, dst)
        except BaseException:
            os.rename(old, dst)
            os.rmdir(aside)
            raise
        _discard(aside)
    try:
        _fsync(dst.parent, True)
    except OSError:
        pass


@contextmanager
def atomic_output(dst: str | os.PathLike, force: bool = False, directory: bool = False) -> Iterator[Path]:
    """Yield a new temporary path (a file, or a folder if ``directory``) beside ``dst``; when the block succeeds,
    fsync it and rename it onto ``dst``; on any failure, interrupt, SIGTERM or SIGHUP, delete it.

    The temporary is created exclusively (random name, never following a link). ``dst`` must not exist unless
    ``force``, and even then only a regular file or a folder of ncodec's own frames is replaced (see check_output);
    OutputError otherwise, before and again just before the rename.
    """
    dst = Path(dst)
    check_output(dst, force)
    with _signals_raise():
        tmp = None
        try:
            prefix = f".{dst.name}.tmp"
            if directory:
                tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dst.parent))
            else:
                fd, name = tempfile.mkstemp(prefix=prefix, dir=dst.parent)
                os.close(fd)
                tmp = Path(name)
            os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())  # mkstemp/mkdtemp make private ones
            yield tmp
            if not directory:  # a writer may have replaced the file (and its mode) under the temporary name
                os.chmod(tmp, 0o666 & ~_umask())
            _sync_tree(tmp, directory)
            _commit(tmp, dst, force, directory)
        except BaseException:
            if tmp is not None:
                _discard(tmp)
            raise
