"""Seeded fuzzing: mutated .ncv files and entropy payloads must decode or raise BitstreamError, never crash or hang.

The structure-aware cases build streams with valid CRCs around hostile header and packet values (huge sizes and
frame counts, lying chunk lengths, bad frame types, escape sequences in names), so that the checks behind the CRC
are what is exercised; each case is bounded in time and the whole run in memory.
"""

from __future__ import annotations

import faulthandler
import io
import random
import struct
import time
import tracemalloc
import zlib
from fractions import Fraction

import numpy as np

from bitstream import (
    MAGIC,
    BitstreamError,
    BudgetExceededError,
    CdfTables,
    DecodeLimits,
    FrameType,
    Packet,
    StreamHeader,
    StreamReader,
    decode_symbols,
    encode_symbols,
    pack_stream,
    unpack_stream,
)

CASES = 2500
TIME_BUDGET_S = 90  # generous for 2 busy cores; a hang kills the run via faulthandler after 2x this


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random mutation: bit flips, truncation, insertion, deletion or overwrite."""
    b = bytearray(data)
    kind = rng.integers(5)
    if kind == 0 and b:
        for _ in range(rng.integers(1, 4)):
            pos = int(rng.integers(len(b)))
            b[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        del b[int(rng.integers(len(b) + 1)) :]
    elif kind == 2:
        pos = int(rng.integers(len(b) + 1))
        b[pos:pos] = rng.integers(0, 256, size=int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
    elif kind == 3 and b:
        pos = int(rng.integers(len(b)))
        del b[pos : pos + int(rng.integers(1, 9))]
    elif b:
        pos = int(rng.integers(len(b)))
        val = rng.choice([0x00, 0xFF, 0x7F, 0x80])
        b[pos : pos + 4] = bytes([val]) * len(b[pos : pos + 4])
    return bytes(b)


def make_tables_and_indexes(rng: np.random.Generator) -> tuple[CdfTables, list[np.ndarray]]:
    pmfs = [np.exp(-np.abs(np.arange(k) - k // 2) / 3.0) for k in (4, 33, 600)]
    tables = CdfTables.from_pmfs(pmfs)
    shapes = [(1, 7), (3, 40), (2, 150)]
    return tables, [rng.integers(0, len(tables), size=s) for s in shapes]


def test_mutated_streams_decode_or_raise_bitstream_error():
    rng = np.random.default_rng(20240601)
    tables, index_sets = make_tables_and_indexes(rng)
    ks = tables.num_symbols

    def tensor(idx):
        k = ks[idx]
        sym = np.minimum(rng.geometric(0.3, size=idx.shape) - 1 + k // 2, k - 1)
        sym[rng.random(idx.shape) < 0.05] = -3  # a few escapes
        return sym

    packets = [
        Packet(
            FrameType.I if i % 3 == 0 else FrameType.P,
            tuple(encode_symbols(tensor(ix), ix, tables) for ix in index_sets),
        )
        for i in range(4)
    ]
    header = StreamHeader(96, 64, Fraction(25), 0, 2, 3, "fuzz-model", b"\x01" * 8)
    valid = pack_stream(header, packets)
    # the same packets in a format version 2 stream (a quality byte per packet), mutated in every other case
    packets_v2 = [Packet(p.frame_type, p.chunks, quality=i + 1) for i, p in enumerate(packets)]
    valid_v2 = pack_stream(StreamHeader(96, 64, Fraction(25), 0, 0, 3, "fuzz-model", b"\x01" * 8, 2), packets_v2)
    faulthandler.dump_traceback_later(2 * TIME_BUDGET_S, exit=True)
    try:
        start = time.monotonic()
        outcomes = {"ok": 0, "error": 0}
        for case in range(CASES):
            data = mutate(valid_v2 if case % 2 else valid, rng)
            try:
                reader = StreamReader(io.BytesIO(data))
                for packet in reader:
                    assert len(packet.chunks) == len(index_sets)  # ok only when the CRC still holds
                    for chunk, ix in zip(packet.chunks, index_sets):
                        decode_symbols(chunk, ix, tables)
                outcomes["ok"] += 1
            except BitstreamError:
                outcomes["error"] += 1
        elapsed = time.monotonic() - start
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert elapsed < TIME_BUDGET_S
    assert outcomes["ok"] + outcomes["error"] == CASES
    assert outcomes["error"] > CASES // 2  # the mutations really do break most files
    _, decoded = unpack_stream(valid)
    assert decoded == packets
    assert unpack_stream(valid_v2)[1] == packets_v2


def test_garbage_and_mutated_entropy_payloads_never_crash():
    rng = np.random.default_rng(7)
    tables, index_sets = make_tables_and_indexes(rng)
    valid = [encode_symbols(rng.integers(-2, 40, size=ix.shape), ix, tables) for ix in index_sets]
    faulthandler.dump_traceback_later(2 * TIME_BUDGET_S, exit=True)
    try:
        start = time.monotonic()
        decoded = 0
        for i in range(CASES):
            ix = index_sets[i % len(index_sets)]
            if i % 2:
                data = mutate(valid[i % len(valid)], rng)
            else:  # random garbage, half of it with a plausible word-count prefix
                body = rng.integers(0, 256, size=int(rng.integers(0, 200)), dtype=np.uint8).tobytes()
                data = (bytes([int(rng.integers(2, 60))]) + body) if i % 4 == 0 else body
            try:
                out = decode_symbols(data, ix, tables)
            except BitstreamError:
                continue
            assert out.shape == ix.shape and out.dtype == np.int32
            decoded += 1
        elapsed = time.monotonic() - start
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert elapsed < TIME_BUDGET_S
    assert decoded > 0  # some corrupt payloads decode to (wrong) values without error, as allowed


STRUCTURED_CASES = 2400
CASE_BUDGET_S = 0.5  # any one case; generous for a busy machine (a case takes well under a millisecond)
MEMORY_BUDGET = 8 << 20  # peak Python allocation of the whole run: no lying length may allocate its claim
U32_EDGES = [0, 1, 2, 3, 255, 4320, 8192, 8193, 16384, 16385, 10**6, 10**6 + 1, 10**7, 10**7 + 1, 2**28, 2**28 + 1,
             2**31, 2**32 - 1]


def hostile_u32(rng: random.Random, lo: int, hi: int) -> int:
    """Mostly a plausible value in [lo, hi], else an edge of some range or any u32."""
    roll = rng.random()
    if roll < 0.9:
        return rng.randint(lo, hi)
    return rng.choice(U32_EDGES) if roll < 0.97 else rng.getrandbits(32)


NAME_PIECES = [b"\x1b[31m", b"\x07", b"\xc3\xa9", b"\xe2\x80\xae", b"a", b"\n", b"\x00"]


def hostile_header(rng: random.Random, name: bytes | None = None, digest: bytes | None = None,
                   version: int = 1) -> bytes:
    """A stream header with arbitrary field values and (nearly always) a correct CRC."""
    fields = [hostile_u32(rng, 1, 64), hostile_u32(rng, 1, 64), hostile_u32(rng, 1, 60), hostile_u32(rng, 1, 2),
              hostile_u32(rng, 0, 6), rng.randrange(256), hostile_u32(rng, 0, 40)]
    if name is None:
        name = b"".join(rng.choice(NAME_PIECES) for _ in range(rng.randrange(12)))
        name += b"\xff" if rng.random() < 0.05 else b""  # not UTF-8
    digest = digest if digest is not None else rng.randbytes(8)
    body = MAGIC + bytes([version]) + struct.pack(">IIIIIBI", *fields) + bytes([len(name)]) + name + digest
    crc = zlib.crc32(body) ^ (1 if rng.random() < 0.03 else 0)
    return body + struct.pack(">I", crc)


def hostile_packet(rng: random.Random, chunk_counts=(0, 1, 2, 3, 4, 9, 255), version: int = 1) -> bytes:
    """A packet with a valid CRC over what it holds; chunk lengths sometimes lie (longer than the data)."""
    frame_type = rng.choice([0] * 6 + [1] * 6 + [2, 255])
    quality = bytes([rng.choice([1, 2, 3, 4, 0, 255])]) if version >= 2 else b""
    count = rng.choice(chunk_counts)
    chunks = [rng.randbytes(rng.randrange(24)) for _ in range(count)]
    lengths = [len(c) if rng.random() < 0.98 else hostile_u32(rng, 0, 64) for c in chunks]
    head = bytes([frame_type]) + quality + bytes([count]) + b"".join(struct.pack(">I", n) for n in lengths) + b"".join(chunks)
    return head + struct.pack(">I", zlib.crc32(head))


def hostile_stream(rng: random.Random, chunk_counts=(0, 1, 2, 3, 4, 9, 255), **header) -> bytes:
    packets = b"".join(hostile_packet(rng, chunk_counts) for _ in range(rng.randrange(6)))
    tail = rng.randbytes(rng.randrange(1, 3)) if rng.random() < 0.1 else b""
    return hostile_header(rng, **header) + packets + tail


def run_bounded(cases, check) -> tuple[dict, float, int]:
    """Run check(data) on every case: each must return or raise BitstreamError within CASE_BUDGET_S."""
    outcomes = {"ok": 0, "budget": 0, "error": 0}
    slowest = 0.0
    faulthandler.dump_traceback_later(60, exit=True)
    tracemalloc.start()
    try:
        for data in cases:
            start = time.monotonic()
            try:
                check(data)
                outcomes["ok"] += 1
            except BudgetExceededError:
                outcomes["budget"] += 1
            except BitstreamError:
                outcomes["error"] += 1
            slowest = max(slowest, time.monotonic() - start)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        faulthandler.cancel_dump_traceback_later()
    return outcomes, slowest, peak


def test_structured_hostile_streams_are_parsed_or_refused():
    rng = random.Random(20261123)
    limits = [DecodeLimits(), DecodeLimits(max_pixels=64 * 64, max_samples=64 * 64 * 3 * 4)]

    def check(data: bytes) -> None:
        budget = limits[len(data) % 2]
        reader = StreamReader(io.BytesIO(data), budget)
        h = reader.header
        assert h.width * h.height <= budget.max_pixels  # anything larger is refused before any packet
        for packet in reader:
            assert packet.frame_type in (FrameType.I, FrameType.P) and len(packet.chunks) <= 255
            assert reader.frames_read * h.width * h.height * 3 <= budget.max_samples
            assert h.frame_count == 0 or reader.frames_read <= h.frame_count

    cases = [hostile_stream(rng) for _ in range(STRUCTURED_CASES)]
    outcomes, slowest, peak = run_bounded(cases, check)
    assert sum(outcomes.values()) == STRUCTURED_CASES
    # every path is taken: over budget, invalid, and valid (fully parsed)
    assert min(outcomes.values()) > STRUCTURED_CASES // 50, outcomes
    assert slowest < CASE_BUDGET_S and peak < MEMORY_BUDGET, (slowest, peak)


def test_structured_hostile_streams_through_the_decoder(tiny_codec):
    """Hostile headers around real and hostile packets that name the right model reach the entropy decoder and the
    network: every stream decodes to frames of the declared size or raises BitstreamError (small frames and tight
    budgets keep it fast)."""
    from conftest import textured_clip

    rng = random.Random(77)
    _, real = unpack_stream(tiny_codec.encode(textured_clip(3, 32, 32, pan=1), gop=2))
    real_raw = [pack_stream(StreamHeader(1, 1, 1, 0, 0, 0, "", b"\0" * 8, version=3), [p])[43:] for p in real]
    name, digest = tiny_codec.name.encode(), tiny_codec.model_hash
    limits = DecodeLimits(max_pixels=64 * 64, max_samples=64 * 64 * 3 * 6)
    frames = []

    def check(data: bytes) -> None:
        decoder = tiny_codec.stream_decoder(io.BytesIO(data), limits)
        for frame in decoder:
            assert frame.shape == (decoder.header.height, decoder.header.width, 3) and frame.dtype == np.uint8
            frames.append(frame.shape)

    def case() -> bytes:
        header = hostile_header(rng, name, digest, version=3 if rng.random() < 0.9 else rng.choice([1, 2]))
        if rng.random() < 0.6:  # a plausible size for the real packets (32x32), in a header with a valid CRC
            body = header[:5] + struct.pack(">II", 32, 32) + header[13:-4]
            header = body + struct.pack(">I", zlib.crc32(body))
        packets = [rng.choice(real_raw) if rng.random() < 0.8 else hostile_packet(rng, (1, 2, 3), version=3)
                   for _ in range(rng.randrange(5))]
        return header + b"".join(packets)

    cases = [case() for _ in range(300)]
    outcomes, slowest, peak = run_bounded(cases, check)
    assert sum(outcomes.values()) == 300 and min(outcomes.values()) > 10, outcomes
    assert len(frames) > 30, len(frames)  # the network really ran on some of them
    assert slowest < 5 * CASE_BUDGET_S, slowest
