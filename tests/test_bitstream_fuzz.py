"""Seeded fuzzing: mutated .ncv files and entropy payloads must decode or raise BitstreamError, never crash or hang."""

from __future__ import annotations

import faulthandler
import io
import time
from fractions import Fraction

import numpy as np

from bitstream import (
    BitstreamError,
    CdfTables,
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
    faulthandler.dump_traceback_later(2 * TIME_BUDGET_S, exit=True)
    try:
        start = time.monotonic()
        outcomes = {"ok": 0, "error": 0}
        for _ in range(CASES):
            data = mutate(valid, rng)
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
