"""Tests for the .ncv container: round trips, frame-count patching, validation and bounded parsing."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tracemalloc
import zlib
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstream import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SAMPLES,
    FORMAT_VERSION,
    FORMAT_VERSIONS,
    MAGIC,
    BitstreamError,
    BudgetExceededError,
    ChecksumError,
    DecodeLimits,
    FrameType,
    HeaderValueError,
    NotNcvError,
    Packet,
    StreamHeader,
    StreamReader,
    StreamWriter,
    TruncatedError,
    UnsupportedVersionError,
    pack_stream,
    unpack_stream,
)


def make_header(**kw) -> StreamHeader:
    base = dict(
        width=64,
        height=48,
        fps=Fraction(30000, 1001),
        frame_count=0,
        quality=3,
        gop=8,
        model_name="rvq-test",
        model_hash=bytes(range(8)),
    )
    base.update(kw)
    return StreamHeader(**base)


PACKETS = [
    Packet(FrameType.I, (b"motion?", b"", b"\x00" * 40)),
    Packet(FrameType.P, (b"abc",)),
    Packet(FrameType.P, ()),
]


class Trickle(io.RawIOBase):
    """Non-seekable file object that returns at most 3 bytes per read (like a pipe)."""

    def __init__(self, data: bytes = b"") -> None:
        self._buf = io.BytesIO(data)
        self.written = bytearray()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(min(n, 3) if n >= 0 else 3)

    def write(self, b) -> int:
        self.written += bytes(b)
        return len(b)


class ReadSpy(io.BytesIO):
    """BytesIO that records the largest read size ever requested."""

    largest = 0

    def read(self, n: int = -1) -> bytes:
        self.largest = max(self.largest, n if n >= 0 else 1 << 62)
        return super().read(n)


headers = st.builds(
    StreamHeader,
    width=st.integers(1, 16384),
    height=st.integers(1, 16384),
    fps=st.builds(Fraction, st.integers(1, 10**6), st.integers(1, 10**6)),
    frame_count=st.just(0),
    quality=st.integers(0, 255),
    gop=st.integers(0, 10**7),
    model_name=st.text(max_size=60),
    model_hash=st.binary(min_size=8, max_size=8),
    version=st.sampled_from(FORMAT_VERSIONS),
)
packets = st.lists(
    st.builds(
        Packet,
        frame_type=st.sampled_from(FrameType),
        chunks=st.lists(st.binary(max_size=300), max_size=6).map(tuple),
        quality=st.integers(0, 255),
    ),
    max_size=8,
)


def fit_packets(header: StreamHeader, pkts: list[Packet]) -> list[Packet]:
    """Version 1 has one quality for the stream, so its packets carry none."""
    return pkts if header.version >= 2 else [Packet(p.frame_type, p.chunks) for p in pkts]


@settings(max_examples=80, deadline=None)
@given(header=headers, pkts=packets)
def test_pack_unpack_round_trip(header, pkts):
    pkts = fit_packets(header, pkts)
    data = pack_stream(header, pkts)
    h2, p2 = unpack_stream(data)
    assert p2 == pkts
    assert h2 == make_header_like(header, frame_count=len(pkts))
    assert data.startswith(MAGIC + bytes([header.version]))


def test_version_2_packets_carry_their_quality():
    v1 = pack_stream(make_header(), PACKETS)
    v2_packets = [Packet(p.frame_type, p.chunks, quality=q) for p, q in zip(PACKETS, (7, 0, 255))]
    v2 = pack_stream(make_header(quality=0, version=2), v2_packets)
    assert v1[4] == 1 and v2[4] == 2
    assert len(v2) == len(v1) + len(PACKETS)  # one byte per packet, the header the same size
    header, read = unpack_stream(v2)
    assert header.version == 2 and [p.quality for p in read] == [7, 0, 255]
    assert [p.quality for p in unpack_stream(v1)[1]] == [None] * len(PACKETS)
    with pytest.raises(HeaderValueError, match="needs version 2"):   # a v1 stream cannot hold another quality
        pack_stream(make_header(quality=3), [Packet(FrameType.I, (), quality=4)])
    pack_stream(make_header(quality=3), [Packet(FrameType.I, (), quality=3)])
    with pytest.raises(HeaderValueError, match="quality of every packet"):
        pack_stream(make_header(quality=0, version=2), [Packet(FrameType.I, ())])
    with pytest.raises(HeaderValueError, match="version"):
        make_header(version=4)
    with pytest.raises(HeaderValueError, match="quality"):
        Packet(FrameType.I, (), quality=256)
    truncated = v2[: len(make_header().to_bytes()) + 2]   # inside the first packet's 3-byte head
    with pytest.raises(TruncatedError, match="packet header"):
        unpack_stream(truncated)


def test_version_3_packets_carry_their_quality_too():
    """Version 3 (learned-rate models) has version 2's packet head, and its header may hold a constant quality."""
    pkts = [Packet(FrameType.I, (b"", b"z", b"y"), 5), Packet(FrameType.P, (b"m", b"z", b"y"), 5)]
    data = pack_stream(make_header(quality=5, version=3), pkts)
    header, read = unpack_stream(data)
    assert header.version == 3 and header.quality == 5 and read == pkts
    with pytest.raises(HeaderValueError, match="version 3 stream needs the quality"):
        pack_stream(make_header(quality=5, version=3), [Packet(FrameType.I, ())])


def make_header_like(h: StreamHeader, **kw) -> StreamHeader:
    fields = {f: getattr(h, f) for f in h.__dataclass_fields__}
    fields.update(kw)
    return StreamHeader(**fields)


@settings(max_examples=50, deadline=None)
@given(header=headers, pkts=packets)
def test_streaming_through_file_objects(header, pkts):
    # Non-seekable output: frame_count stays 0 and the reader stops at EOF; trickling reads must work.
    pkts = fit_packets(header, pkts)
    sink = Trickle()
    with StreamWriter(sink, header) as w:
        sizes = [w.write(p) for p in pkts]
    data = bytes(sink.written)
    assert sum(sizes) + len(header.to_bytes()) == len(data)
    reader = StreamReader(Trickle(data))
    assert reader.header == header
    assert list(reader) == pkts
    assert reader.read() is None
    # Seekable output: the same packets, frame_count patched in place.
    buf = io.BytesIO()
    with StreamWriter(buf, header) as w:
        for p in pkts:
            w.write(p)
    h2, p2 = unpack_stream(buf.getvalue())
    assert h2.frame_count == len(pkts) and p2 == pkts
    assert len(buf.getvalue()) == len(data)


def test_frame_count_patched_in_real_file_at_offset(tmp_path):
    path = tmp_path / "a.ncv"
    with open(path, "wb") as f:
        f.write(b"prefix")
        w = StreamWriter(f, make_header(frame_count=0))
        for p in PACKETS:
            w.write(p)
        w.close()
        f.write(b"")  # writer left the position at the end of the stream
        assert f.tell() == path.stat().st_size
    data = path.read_bytes()
    assert data.startswith(b"prefix")
    header, pkts = unpack_stream(data[6:])
    assert header.frame_count == len(PACKETS)
    assert pkts == PACKETS


def test_declared_frame_count_enforced_by_writer():
    buf = io.BytesIO()
    w = StreamWriter(buf, make_header(frame_count=2))
    w.write(PACKETS[0])
    with pytest.raises(HeaderValueError):
        w.close()  # one packet short
    w2 = StreamWriter(io.BytesIO(), make_header(frame_count=1))
    w2.write(PACKETS[0])
    with pytest.raises(HeaderValueError):
        w2.write(PACKETS[1])
    w2.close()
    with pytest.raises(ValueError):
        w2.write(PACKETS[0])
    # An exception inside the with-block is not masked by the count check.
    with pytest.raises(KeyError):
        with StreamWriter(io.BytesIO(), make_header(frame_count=5)) as w3:
            w3.write(PACKETS[0])
            raise KeyError("boom")


def test_declared_frame_count_enforced_by_reader():
    data = pack_stream(make_header(frame_count=0), PACKETS)  # patched to 3
    with pytest.raises(BitstreamError, match="after the last"):
        unpack_stream(data + b"\x00")
    last = len(pack_stream(make_header(frame_count=2), PACKETS[:2]))
    cut = pack_stream(make_header(frame_count=3), PACKETS)[:last]
    with pytest.raises(TruncatedError, match="2 of 3"):
        unpack_stream(cut)


def test_every_truncation_is_detected():
    data = pack_stream(make_header(), PACKETS)
    for n in range(len(data)):
        with pytest.raises(TruncatedError):
            unpack_stream(data[:n])


def test_streaming_stream_cut_at_packet_boundary_reads_prefix():
    sink = Trickle()
    with StreamWriter(sink, make_header()) as w:
        sizes = [w.write(p) for p in PACKETS]
    data = bytes(sink.written)
    cut = len(data) - sizes[-1]
    header, pkts = unpack_stream(data[:cut])
    assert header.frame_count == 0 and pkts == PACKETS[:-1]


def test_magic_version_and_checksums():
    data = bytearray(pack_stream(make_header(), PACKETS))
    with pytest.raises(NotNcvError):
        unpack_stream(b"RIFF" + bytes(data[4:]))
    with pytest.raises(NotNcvError):
        unpack_stream(b"x")
    with pytest.raises(TruncatedError):
        unpack_stream(MAGIC[:2])
    bad_version = bytes(data[:4]) + bytes([FORMAT_VERSION + 1]) + bytes(data[5:])
    with pytest.raises(UnsupportedVersionError, match=f"version {FORMAT_VERSION + 1}"):
        unpack_stream(bad_version)
    hdr_len = len(make_header().to_bytes())
    corrupt = bytearray(data)
    corrupt[hdr_len - 9] ^= 0x01  # inside model_hash
    with pytest.raises(ChecksumError, match="header"):
        unpack_stream(bytes(corrupt))
    corrupt = bytearray(data)
    corrupt[hdr_len + 2 + 12 + 3] ^= 0x80  # inside the first packet's payload (after type, count, 3 lengths)
    with pytest.raises(ChecksumError, match="packet 0"):
        unpack_stream(bytes(corrupt))
    corrupt = bytearray(data)
    corrupt[hdr_len] = 7  # frame type
    with pytest.raises(HeaderValueError, match="frame type"):
        unpack_stream(bytes(corrupt))


def raw_header(width=64, height=48, num=30, den=1, count=0, quality=1, gop=8, name=b"m", digest=b"12345678") -> bytes:
    body = MAGIC + bytes([1])
    body += struct.pack(">IIIIIBI", width, height, num, den, count, quality, gop)
    body += bytes([len(name)]) + name + digest
    return body + struct.pack(">I", zlib.crc32(body))


def test_raw_header_matches_writer():
    assert raw_header() == make_header(fps=30, model_name="m", model_hash=b"12345678", quality=1).to_bytes()


@pytest.mark.parametrize(
    "kw",
    [dict(width=100000), dict(height=0), dict(num=0), dict(den=10**6 + 1), dict(count=10**7 + 1), dict(gop=2**32 - 1)],
)
def test_out_of_range_header_values_rejected(kw):
    with pytest.raises(HeaderValueError) as e:
        unpack_stream(raw_header(**kw))
    assert "\n" not in str(e.value)


def test_huge_packet_length_rejected_without_allocating():
    head = raw_header()
    claims = [
        b"\x00\x01" + struct.pack(">I", 2**31),  # 2 GiB chunk
        b"\x01\xff" + struct.pack(">I", 2**28) * 255,  # 255 chunks of 256 MiB each
    ]
    for claim in claims:
        spy = ReadSpy(head + claim + b"\x00" * 16)
        tracemalloc.start()
        try:
            with pytest.raises(HeaderValueError, match="exceeds"):
                list(StreamReader(spy))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20
        assert spy.largest <= 1 << 20
    # A length within bounds but longer than the file: bounded reads, then TruncatedError.
    spy = ReadSpy(head + b"\x00\x01" + struct.pack(">I", 200 << 20) + b"\x00" * 100)
    tracemalloc.start()
    try:
        with pytest.raises(TruncatedError):
            list(StreamReader(spy))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert spy.largest <= 1 << 20


def test_bad_utf8_model_name():
    with pytest.raises(HeaderValueError, match="UTF-8"):
        unpack_stream(raw_header(name=b"\xff\xfe"))


@pytest.mark.parametrize(
    "kw",
    [
        dict(width=0),
        dict(width=16385),
        dict(height=-1),
        dict(width=1.5),
        dict(width=True),
        dict(fps=0),
        dict(fps=-30),
        dict(fps=Fraction(1, 10**7)),
        dict(fps="fast"),
        dict(fps=None),
        dict(frame_count=-1),
        dict(frame_count=10**7 + 1),
        dict(quality=256),
        dict(gop=-1),
        dict(model_name="x" * 256),
        dict(model_name="é" * 128),
        dict(model_name=b"bytes"),
        dict(model_hash=b"1234567"),
        dict(model_hash="12345678"),
    ],
)
def test_writer_side_header_validation(kw):
    with pytest.raises(HeaderValueError) as e:
        make_header(**kw)
    assert "\n" not in str(e.value)


def test_header_coercions():
    assert make_header(fps=25).fps == Fraction(25)
    assert make_header(fps="30000/1001").fps == Fraction(30000, 1001)
    assert make_header(fps=30000 / 1001).fps == Fraction(30000, 1001)
    assert make_header(model_hash=bytearray(8)).model_hash == bytes(8)
    assert make_header(model_name="x" * 255).model_name == "x" * 255


def test_packet_validation():
    with pytest.raises(HeaderValueError, match="frame type"):
        Packet(2, ())
    with pytest.raises(HeaderValueError):
        Packet(FrameType.I, b"not a tuple of chunks")
    with pytest.raises(HeaderValueError):
        Packet(FrameType.I, ("text",))
    with pytest.raises(HeaderValueError, match="chunks"):
        Packet(FrameType.I, (b"",) * 256)
    p = Packet(1, [bytearray(b"ab"), memoryview(b"cd")])
    assert p.frame_type is FrameType.P and p.chunks == (b"ab", b"cd")
    assert p.payload_size == 4


def test_import_is_light():
    code = "import sys, bitstream; assert 'torch' not in sys.modules and 'compressai' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def raw_packet(chunks: list[bytes], frame_type: int = 0) -> bytes:
    head = bytes([frame_type, len(chunks)]) + b"".join(struct.pack(">I", len(c)) for c in chunks) + b"".join(chunks)
    return head + struct.pack(">I", zlib.crc32(head))


def test_decode_limits_refuse_huge_frames_before_any_packet():
    data = raw_header(16384, 16384, count=1) + raw_packet([b"x"])
    assert len(data) < 80
    tracemalloc.start()
    try:
        with pytest.raises(BudgetExceededError, match="16384x16384"):
            StreamReader(io.BytesIO(data), DecodeLimits())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert StreamReader(io.BytesIO(data)).header.width == 16384  # no budget: parsing alone is bounded
    assert StreamReader(io.BytesIO(data), DecodeLimits(max_pixels=16384 * 16384)).read() is not None


def test_decode_limits_total_samples_declared_and_streaming():
    limits = DecodeLimits(max_pixels=100, max_samples=10 * 10 * 3 * 4)  # four 10x10 frames
    with pytest.raises(BudgetExceededError, match="5 frames"):
        StreamReader(io.BytesIO(raw_header(10, 10, count=5)), limits)
    # frame_count 0 (streaming): the same budget, checked before each packet's data is read
    reader = StreamReader(io.BytesIO(raw_header(10, 10) + raw_packet([b"ab"]) * 6), limits)
    assert [reader.read() is not None for _ in range(4)] == [True] * 4
    with pytest.raises(BudgetExceededError, match="5 frames"):
        reader.read()
    exact = raw_header(10, 10) + raw_packet([b"ab"]) * 4  # ending right at the budget is fine
    assert len(unpack_stream(exact, limits)[1]) == 4


def test_decode_limits_values():
    assert DecodeLimits().max_pixels == DEFAULT_MAX_PIXELS == 8192 * 4320
    assert DecodeLimits.of(None, 7) == DecodeLimits(max_pixels=7, max_samples=DEFAULT_MAX_SAMPLES)
    custom = DecodeLimits(5, 6)
    assert DecodeLimits.of(custom) is custom
    for bad in [0, -1, 1.5, True, "9"]:
        with pytest.raises(ValueError):
            DecodeLimits(max_pixels=bad)
    with pytest.raises(TypeError):
        DecodeLimits.of(object())


def test_reader_position_counts_every_byte():
    data = raw_header(8, 8, name=b"name") + raw_packet([b"abc", b""]) + raw_packet([])
    reader = StreamReader(io.BytesIO(data))
    assert reader.position == reader.header_size == 47
    positions = [reader.position for _ in reader]
    assert positions == [47 + 6 + 4 * 2 + 3, len(data)] and reader.position == len(data)
