"""The .ncv container: a checksummed stream header followed by one length-prefixed packet per frame."""

from __future__ import annotations

import dataclasses
import enum
import io
import operator
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Iterable, Iterator

from .errors import (
    BitstreamError,
    BudgetExceededError,
    ChecksumError,
    HeaderValueError,
    NotNcvError,
    TruncatedError,
    UnsupportedVersionError,
)

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "FORMAT_VERSIONS",
    "FrameType",
    "StreamHeader",
    "Packet",
    "StreamWriter",
    "StreamReader",
    "DecodeLimits",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SAMPLES",
    "pack_stream",
    "unpack_stream",
    "MAX_DIM",
    "MAX_FPS_TERM",
    "MAX_FRAME_COUNT",
    "MAX_GOP",
    "MAX_NAME_BYTES",
    "MAX_CHUNKS",
    "MAX_PAYLOAD",
]

MAGIC = b"NCV\x00"
FORMAT_VERSION = 3           # the newest version: learned-rate models (FORMAT.md); 2 added a packet quality byte
FORMAT_VERSIONS = (1, 2, 3)  # what readers accept and writers write

# Bounds, checked before anything is allocated (see FORMAT.md).
MAX_DIM = 16384
MAX_FPS_TERM = 10**6
MAX_FRAME_COUNT = 10**7
MAX_GOP = 10**7
MAX_QUALITY = 255
MAX_NAME_BYTES = 255
MODEL_HASH_BYTES = 8
MAX_CHUNKS = 255
MAX_PAYLOAD = 256 * 1024 * 1024  # total chunk bytes in one packet

# Decoder budgets (DecodeLimits defaults): 8192x4320 pixels per frame; 2^40 decoded RGB samples in all
# (frames x width x height x 3: about 98 minutes of 1080p at 30 fps).
DEFAULT_MAX_PIXELS = 8192 * 4320
DEFAULT_MAX_SAMPLES = 1 << 40
SAMPLES_PER_PIXEL = 3

_READ_PIECE = 1 << 20  # bounded reads: never ask the file object for more than this at once

# Header layout (big-endian): magic, version | width, height, fps_num, fps_den, frame_count, quality, gop | name_len
_PREFIX = struct.Struct(">4sB")
_FIELDS = struct.Struct(">IIIIIBI")
_U8 = struct.Struct(">B")
_U32 = struct.Struct(">I")
_PACKET_HEAD = struct.Struct(">BB")     # version 1: frame_type, n_chunks
_PACKET_HEAD_V2 = struct.Struct(">BBB")  # versions 2 and 3: frame_type, quality, n_chunks
_FRAME_COUNT_OFFSET = _PREFIX.size + 16  # byte offset of frame_count inside the header


class FrameType(enum.IntEnum):
    """Kind of coded frame: intra (self-contained) or predicted (needs the previous frame)."""

    I = 0  # noqa: E741 - the standard name of an intra frame
    P = 1


def _as_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise HeaderValueError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise HeaderValueError(f"{name} must be an integer, got {type(value).__name__}") from None
    if not lo <= v <= hi:
        raise HeaderValueError(f"{name} {v} out of range [{lo}, {hi}]")
    return v


def _as_fraction(value: object) -> Fraction:
    if isinstance(value, Fraction):
        return value
    if isinstance(value, bool):
        raise HeaderValueError(f"fps must be a positive rational, got {value!r}")
    try:
        if isinstance(value, float):
            return Fraction(value).limit_denominator(MAX_FPS_TERM)
        return Fraction(value)  # int, numbers.Rational, "30000/1001"
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        raise HeaderValueError(f"fps must be a positive rational, got {value!r}") from None


@dataclass(frozen=True)
class StreamHeader:
    """Stream parameters stored once at the start of a .ncv file (validated on construction).

    ``version`` 1: every frame has the header's quality; 2: each packet carries its own quality (rate control),
    and the header's quality is 0; 3 (learned-rate models): each packet carries its quality, which the decoder
    needs, and the header's quality is the stream's constant one or 0 (rate control)."""

    width: int
    height: int
    fps: Fraction
    frame_count: int  # 0 = unknown (streaming)
    quality: int
    gop: int
    model_name: str
    model_hash: bytes  # first 8 bytes of the sha256 of the model weights
    version: int = 1

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.version, bool) or self.version not in FORMAT_VERSIONS:
            raise HeaderValueError(f"format version must be one of {FORMAT_VERSIONS}, got {self.version!r}")
        set_(self, "width", _as_int("width", self.width, 1, MAX_DIM))
        set_(self, "height", _as_int("height", self.height, 1, MAX_DIM))
        fps = _as_fraction(self.fps)
        if not (0 < fps.numerator <= MAX_FPS_TERM and 0 < fps.denominator <= MAX_FPS_TERM):
            raise HeaderValueError(f"fps {fps} out of range (numerator and denominator must be in 1..{MAX_FPS_TERM})")
        set_(self, "fps", fps)
        set_(self, "frame_count", _as_int("frame_count", self.frame_count, 0, MAX_FRAME_COUNT))
        set_(self, "quality", _as_int("quality", self.quality, 0, MAX_QUALITY))
        set_(self, "gop", _as_int("gop", self.gop, 0, MAX_GOP))
        if not isinstance(self.model_name, str):
            raise HeaderValueError(f"model_name must be a str, got {type(self.model_name).__name__}")
        try:
            name_len = len(self.model_name.encode("utf-8"))
        except UnicodeEncodeError:
            raise HeaderValueError("model_name is not encodable as UTF-8") from None
        if name_len > MAX_NAME_BYTES:
            raise HeaderValueError(f"model_name is {name_len} bytes in UTF-8, at most {MAX_NAME_BYTES} allowed")
        if not isinstance(self.model_hash, (bytes, bytearray, memoryview)):
            raise HeaderValueError(f"model_hash must be bytes, got {type(self.model_hash).__name__}")
        digest = bytes(self.model_hash)
        if len(digest) != MODEL_HASH_BYTES:
            raise HeaderValueError(f"model_hash must be {MODEL_HASH_BYTES} bytes, got {len(digest)}")
        set_(self, "model_hash", digest)

    def to_bytes(self) -> bytes:
        """Serialize the header, CRC32 included."""
        name = self.model_name.encode("utf-8")
        body = b"".join(
            (
                _PREFIX.pack(MAGIC, self.version),
                _FIELDS.pack(
                    self.width,
                    self.height,
                    self.fps.numerator,
                    self.fps.denominator,
                    self.frame_count,
                    self.quality,
                    self.gop,
                ),
                _U8.pack(len(name)),
                name,
                self.model_hash,
            )
        )
        return body + _U32.pack(zlib.crc32(body))


@dataclass(frozen=True)
class Packet:
    """One coded frame: its type, the separately entropy-coded byte chunks, and (format versions 2 and 3) the
    quality it was coded at: informative in version 2 (a decoder needs none of it), the quality whose gains
    decode the frame in version 3. None: the stream's quality (version 1)."""

    frame_type: FrameType
    chunks: tuple[bytes, ...]
    quality: int | None = None

    def __post_init__(self) -> None:
        if self.quality is not None:
            object.__setattr__(self, "quality", _as_int("packet quality", self.quality, 0, MAX_QUALITY))
        try:
            ft = FrameType(self.frame_type)
        except (ValueError, TypeError):
            raise HeaderValueError(f"unknown frame type {self.frame_type!r}") from None
        object.__setattr__(self, "frame_type", ft)
        if isinstance(self.chunks, (bytes, bytearray, memoryview, str)):
            raise HeaderValueError("chunks must be a sequence of bytes objects, not a single bytes object")
        try:
            chunks = tuple(self.chunks)
        except TypeError:
            raise HeaderValueError("chunks must be a sequence of bytes objects") from None
        if len(chunks) > MAX_CHUNKS:
            raise HeaderValueError(f"{len(chunks)} chunks in one packet, at most {MAX_CHUNKS} allowed")
        out = []
        for c in chunks:
            if not isinstance(c, (bytes, bytearray, memoryview)):
                raise HeaderValueError(f"chunk must be bytes, got {type(c).__name__}")
            out.append(bytes(c))
        total = sum(len(c) for c in out)
        if total > MAX_PAYLOAD:
            raise HeaderValueError(f"packet payload {total} bytes exceeds {MAX_PAYLOAD}")
        object.__setattr__(self, "chunks", tuple(out))

    @property
    def payload_size(self) -> int:
        """Total number of chunk bytes."""
        return sum(len(c) for c in self.chunks)


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    """Read exactly n bytes in bounded pieces; TruncatedError if the stream ends first."""
    parts = []
    remaining = n
    while remaining > 0:
        piece = f.read(min(remaining, _READ_PIECE))
        if not piece:
            raise TruncatedError(f"stream truncated in {what} ({n - remaining} of {n} bytes)")
        parts.append(piece)
        remaining -= len(piece)
    return b"".join(parts)


def _read_upto(f: BinaryIO, n: int) -> bytes:
    """Read up to n (small) bytes, stopping early only at end of stream."""
    parts = []
    remaining = n
    while remaining > 0:
        piece = f.read(remaining)
        if not piece:
            break
        parts.append(piece)
        remaining -= len(piece)
    return b"".join(parts)


def _read_header(f: BinaryIO) -> tuple[StreamHeader, int]:
    """Parse and validate a header; return it and its size in bytes."""
    prefix = _read_upto(f, _PREFIX.size)
    if len(prefix) < len(MAGIC):
        if MAGIC.startswith(prefix) and prefix:
            raise TruncatedError(f"stream truncated in magic ({len(prefix)} of {len(MAGIC)} bytes)")
        if not prefix:
            raise TruncatedError("empty stream: no .ncv header")
        raise NotNcvError("not an .ncv stream (bad magic)")
    if prefix[: len(MAGIC)] != MAGIC:
        raise NotNcvError("not an .ncv stream (bad magic)")
    if len(prefix) < _PREFIX.size:
        raise TruncatedError("stream truncated before the format version")
    version = prefix[len(MAGIC)]
    if version not in FORMAT_VERSIONS:
        known = " and ".join(map(str, FORMAT_VERSIONS))
        raise UnsupportedVersionError(f"unsupported .ncv format version {version} (this reader knows {known})")
    fields = _read_exact(f, _FIELDS.size + _U8.size, "header")
    width, height, fps_num, fps_den, frame_count, quality, gop = _FIELDS.unpack_from(fields)
    # Bounds first (the CRC below cannot make an out-of-range value acceptable anyway).
    _as_int("width", width, 1, MAX_DIM)
    _as_int("height", height, 1, MAX_DIM)
    _as_int("fps numerator", fps_num, 1, MAX_FPS_TERM)
    _as_int("fps denominator", fps_den, 1, MAX_FPS_TERM)
    _as_int("frame_count", frame_count, 0, MAX_FRAME_COUNT)
    _as_int("gop", gop, 0, MAX_GOP)
    name_len = fields[-1]  # u8, so <= MAX_NAME_BYTES by construction
    rest = _read_exact(f, name_len + MODEL_HASH_BYTES + _U32.size, "header")
    body = prefix + fields + rest[: -_U32.size]
    (stored_crc,) = _U32.unpack_from(rest, len(rest) - _U32.size)
    if zlib.crc32(body) != stored_crc:
        raise ChecksumError("header checksum mismatch")
    try:
        name = rest[:name_len].decode("utf-8")
    except UnicodeDecodeError:
        raise HeaderValueError("model name is not valid UTF-8") from None
    header = StreamHeader(
        width=width,
        height=height,
        fps=Fraction(fps_num, fps_den),
        frame_count=frame_count,
        quality=quality,
        gop=gop,
        model_name=name,
        model_hash=rest[name_len : name_len + MODEL_HASH_BYTES],
        version=version,
    )
    return header, len(body) + _U32.size


@dataclass(frozen=True)
class DecodeLimits:
    """Resource budget of a decode, checked against the header before anything is allocated and again before each
    packet: at most ``max_pixels`` pixels per frame and ``max_samples`` decoded samples (frames x pixels x 3)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_samples: int = DEFAULT_MAX_SAMPLES

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @classmethod
    def of(cls, limits: "DecodeLimits | None" = None, max_pixels: int | None = None) -> "DecodeLimits":
        """``limits`` (default: the default budget), with ``max_pixels`` replaced if given."""
        limits = cls() if limits is None else limits
        if not isinstance(limits, cls):
            raise TypeError(f"limits must be a DecodeLimits, got {type(limits).__name__}")
        return limits if max_pixels is None else dataclasses.replace(limits, max_pixels=max_pixels)

    def check_header(self, header: StreamHeader) -> None:
        """BudgetExceededError if one frame, or the declared frame_count, is over budget."""
        pixels = header.width * header.height
        if pixels > self.max_pixels:
            raise BudgetExceededError(
                f"frame size {header.width}x{header.height} ({pixels:,} pixels) exceeds the decoder limit of "
                f"{self.max_pixels:,} pixels per frame (raise max_pixels / --max-pixels to decode it)")
        self.check_frames(header, header.frame_count)

    def check_frames(self, header: StreamHeader, frames: int) -> None:
        """BudgetExceededError if ``frames`` frames of this stream are over the total sample budget."""
        samples = frames * header.width * header.height * SAMPLES_PER_PIXEL
        if samples > self.max_samples:
            raise BudgetExceededError(
                f"{frames:,} frame{'s' * (frames != 1)} of {header.width}x{header.height} ({samples:,} samples) "
                f"exceed{'s' * (frames == 1)} the decoder "
                f"limit of {self.max_samples:,} decoded samples (raise max_samples / --max-samples to decode it)")


class StreamWriter:
    """Write a .ncv stream frame by frame to a binary file object (the header is written immediately)."""

    def __init__(self, fileobj: BinaryIO, header: StreamHeader) -> None:
        if not isinstance(header, StreamHeader):
            raise TypeError(f"header must be a StreamHeader, got {type(header).__name__}")
        self._f = fileobj
        self.header = header
        self.frames_written = 0
        self.bytes_written = 0
        self._closed = False
        self._start: int | None = None
        if header.frame_count == 0 and _seekable(fileobj):
            try:
                self._start = fileobj.tell()
            except (OSError, ValueError):
                self._start = None
        data = header.to_bytes()
        fileobj.write(data)
        self.bytes_written += len(data)

    def write(self, packet: Packet) -> int:
        """Append one packet; return the number of bytes written for it."""
        if self._closed:
            raise ValueError("StreamWriter is closed")
        if not isinstance(packet, Packet):
            raise TypeError(f"expected a Packet, got {type(packet).__name__}")
        limit = self.header.frame_count or MAX_FRAME_COUNT
        if self.frames_written >= limit:
            raise HeaderValueError(f"cannot write more than {limit} packets (header frame_count)")
        if self.header.version == 1:
            if packet.quality not in (None, self.header.quality):
                raise HeaderValueError(f"a format version 1 stream has one quality ({self.header.quality}); "
                                       f"packet quality {packet.quality} needs version 2")
            head = _PACKET_HEAD.pack(int(packet.frame_type), len(packet.chunks))
        else:
            if packet.quality is None:
                raise HeaderValueError(f"a format version {self.header.version} stream needs the quality of "
                                       "every packet")
            head = _PACKET_HEAD_V2.pack(int(packet.frame_type), packet.quality, len(packet.chunks))
        head += b"".join(_U32.pack(len(c)) for c in packet.chunks)
        crc = zlib.crc32(head)
        self._f.write(head)
        for c in packet.chunks:
            crc = zlib.crc32(c, crc)
            self._f.write(c)
        self._f.write(_U32.pack(crc))
        n = len(head) + packet.payload_size + _U32.size
        self.frames_written += 1
        self.bytes_written += n
        return n

    def close(self) -> None:
        """Finish the stream: patch frame_count if it was 0 and the file is seekable; does not close fileobj."""
        self._finish(check=True)

    def _finish(self, check: bool) -> None:
        if self._closed:
            return
        self._closed = True
        declared = self.header.frame_count
        if declared == 0:
            if self._start is not None and self.frames_written > 0 and "a" not in getattr(self._f, "mode", ""):
                patched = dataclasses.replace(self.header, frame_count=self.frames_written).to_bytes()
                end = self._f.tell()
                self._f.seek(self._start)
                self._f.write(patched)
                self._f.seek(end)
        elif check and self.frames_written != declared:
            raise HeaderValueError(f"wrote {self.frames_written} packets but header frame_count is {declared}")
        flush = getattr(self._f, "flush", None)
        if flush is not None:
            flush()

    def __enter__(self) -> "StreamWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._finish(check=exc_type is None)


def _seekable(f: object) -> bool:
    try:
        return bool(f.seekable())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


class StreamReader:
    """Read and validate a .ncv stream from a binary file object, packet by packet."""

    def __init__(self, fileobj: BinaryIO, limits: DecodeLimits | None = None) -> None:
        """``limits``: a decode budget to enforce (None: none, the parse alone is bounded; see DecodeLimits)."""
        self._f = fileobj
        self.header, self.header_size = _read_header(fileobj)
        self.limits = limits
        if limits is not None:
            limits.check_header(self.header)
        self.frames_read = 0
        self.position = self.header_size  # bytes consumed so far (header and whole packets)
        self._done = False

    def read(self) -> Packet | None:
        """Return the next packet, or None at the clean end of the stream."""
        if self._done:
            return None
        declared = self.header.frame_count
        if declared and self.frames_read >= declared:
            if _read_upto(self._f, 1):
                raise BitstreamError(f"unexpected data after the last of {declared} frames")
            self._done = True
            return None
        v2 = self.header.version >= 2   # versions 2 and 3: the packet head has the quality byte
        head_size = (_PACKET_HEAD_V2 if v2 else _PACKET_HEAD).size
        head = _read_upto(self._f, head_size)
        if not head:
            if declared and self.frames_read < declared:
                raise TruncatedError(f"stream ends after {self.frames_read} of {declared} frames")
            self._done = True
            return None
        if len(head) < head_size:
            raise TruncatedError("stream truncated in packet header")
        if self.limits is not None:
            self.limits.check_frames(self.header, self.frames_read + 1)
        ftype, quality, nchunks = head if v2 else (head[0], None, head[1])
        if ftype not in (FrameType.I, FrameType.P):
            raise HeaderValueError(f"unknown frame type {ftype} in packet {self.frames_read}")
        lens_raw = _read_exact(self._f, 4 * nchunks, "packet header")
        lengths = struct.unpack(f">{nchunks}I", lens_raw)
        total = 0
        for n in lengths:
            total += n
            if total > MAX_PAYLOAD:
                raise HeaderValueError(f"packet {self.frames_read} payload exceeds {MAX_PAYLOAD} bytes")
        crc = zlib.crc32(head + lens_raw)
        chunks = []
        for n in lengths:
            c = _read_exact(self._f, n, "packet payload")
            crc = zlib.crc32(c, crc)
            chunks.append(c)
        (stored,) = _U32.unpack(_read_exact(self._f, _U32.size, "packet checksum"))
        if stored != crc:
            raise ChecksumError(f"checksum mismatch in packet {self.frames_read}")
        self.frames_read += 1
        self.position += head_size + len(lens_raw) + total + _U32.size
        return Packet(FrameType(ftype), tuple(chunks), quality)

    def __iter__(self) -> Iterator[Packet]:
        while (p := self.read()) is not None:
            yield p


def pack_stream(header: StreamHeader, packets: Iterable[Packet]) -> bytes:
    """Serialize a whole stream; a frame_count of 0 is replaced by the number of packets."""
    buf = io.BytesIO()
    with StreamWriter(buf, header) as w:
        for p in packets:
            w.write(p)
    return buf.getvalue()


def unpack_stream(data: bytes | bytearray | memoryview,
                  limits: DecodeLimits | None = None) -> tuple[StreamHeader, list[Packet]]:
    """Parse a whole stream held in memory; raise a BitstreamError subclass on any defect."""
    reader = StreamReader(io.BytesIO(bytes(data)), limits)
    return reader.header, list(reader)

