"""rANS entropy coding of integer symbols with CompressAI's coder, plus CDF table building and storage."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import BitstreamError, TruncatedError

__all__ = [
    "PRECISION",
    "MAX_ALPHABET",
    "build_cdf",
    "CdfTables",
    "encode_symbols",
    "decode_symbols",
    "decode_symbols_staged",
    "encode_varints",
    "decode_varints",
]

PRECISION = 16  # CompressAI's rANS coder is compiled with 16-bit probabilities
MAX_ALPHABET = (1 << PRECISION) - 1  # K symbols + 1 escape bin must fit with every frequency >= 1
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
_MIN_CODED = 8  # the C++ encoder's output buffer is one word per symbol: pad tiny inputs (flush needs 2 words)
_MAX_VARINT = 5  # bytes of one LEB128 value below 2**35


def _rans():
    """Import CompressAI's compiled coder lazily (it pulls in torch)."""
    from compressai import ans

    return ans


def _quantize_counts(p: np.ndarray, budget: int) -> np.ndarray:
    """Integer counts >= 1 summing to budget, proportional to p (water-filling + largest remainder)."""
    k = p.size
    c = p / p.sum() * budget
    lo, hi = 0.0, 1.0
    for _ in range(60):  # largest scale s with sum(max(1, floor(c*s))) <= budget
        mid = 0.5 * (lo + hi)
        if np.maximum(1, np.floor(c * mid)).sum() <= budget:
            lo = mid
        else:
            hi = mid
    scaled = c * lo
    counts = np.maximum(1, np.floor(scaled)).astype(np.int64)
    left = budget - int(counts.sum())
    remainder = np.where(scaled >= 1, scaled - np.floor(scaled), scaled - 1.0)
    order = np.argsort(-remainder, kind="stable")
    while left > 0:  # at most a couple of rounds: left < k except for degenerate ties
        take = order[: min(left, k)]
        counts[take] += 1
        left -= take.size
    return counts


def build_cdf(pmf: np.ndarray, precision: int = PRECISION) -> np.ndarray:
    """Quantize K probabilities to an int32 CDF of K+2 entries whose last bin is the escape (mass >= 1)."""
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)) or not 1 <= precision <= PRECISION:
        raise ValueError(f"precision must be an integer in [1, {PRECISION}], got {precision!r}")
    precision = int(precision)
    p = np.asarray(pmf, dtype=np.float64)
    if p.ndim != 1 or p.size < 1:
        raise ValueError(f"pmf must be a non-empty 1-D array, got shape {p.shape}")
    k = p.size
    total = 1 << precision
    if k + 1 > total:
        raise ValueError(f"{k} symbols do not fit in a {precision}-bit CDF (at most {total - 1})")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not p.sum() > 0:
        raise ValueError("pmf must be finite, non-negative and have a positive sum")
    counts = _quantize_counts(p, total - 1)  # the escape bin gets the remaining 1
    from compressai import _CXX

    quantized = (np.append(counts, 1) / total).astype(np.float32).tolist()  # exact: counts < 2**24
    cdf = np.asarray(_CXX.pmf_to_quantized_cdf(quantized, precision), dtype=np.int64)
    _check_cdf(cdf, 0)
    return cdf.astype(np.int32)


def _check_cdf(cdf: np.ndarray, i: int) -> int:
    """Validate one CDF row; return its precision in bits."""
    if cdf.ndim != 1 or cdf.size < 3:
        raise ValueError(f"CDF {i}: needs at least 3 entries (1 symbol + escape), got shape {cdf.shape}")
    if cdf[0] != 0:
        raise ValueError(f"CDF {i}: must start at 0, starts at {int(cdf[0])}")
    if np.any(np.diff(cdf) <= 0):
        raise ValueError(f"CDF {i}: must be strictly increasing")
    last = int(cdf[-1])
    if last & (last - 1) or not 2 <= last <= 1 << PRECISION:
        raise ValueError(f"CDF {i}: must end at 2**precision with precision <= {PRECISION}, ends at {last}")
    return last.bit_length() - 1


class CdfTables:
    """A set of integer CDF tables (escape bin last); converted once to the coder's list form."""

    def __init__(self, cdfs: Sequence[np.ndarray]) -> None:
        rows = []
        for i, c in enumerate(cdfs):
            arr = np.asarray(c)
            if arr.dtype.kind not in "iu":
                raise ValueError(f"CDF {i}: must be an integer array, got dtype {arr.dtype}")
            arr = arr.astype(np.int64)
            _check_cdf(arr, i)
            rows.append(arr)
        if not rows:
            raise ValueError("CdfTables needs at least one CDF")
        self._cdfs = [r.astype(np.int32) for r in rows]
        for r in self._cdfs:
            r.setflags(write=False)
        ks = np.array([r.size - 2 for r in rows], dtype=np.int64)
        self._ks = ks
        # Coder form (see FORMAT.md): symbols reordered by decreasing frequency (CompressAI's decoder searches
        # the CDF linearly), scaled to 16 bits, plus one unused trailing entry so that cdf_size - 2 == K + 1 is
        # a value the decoder can never produce; this disables CompressAI's in-stream bypass mode.
        lists = []
        rank_of, symbol_of = [], []
        for r in rows:
            freq = np.diff(r) << (PRECISION - (int(r[-1]).bit_length() - 1))
            order = np.argsort(-freq[:-1], kind="stable")  # symbols by decreasing frequency, escape stays last
            ranks = np.empty_like(order)
            ranks[order] = np.arange(order.size)
            rank_of.append(ranks)
            symbol_of.append(order)
            coder_cdf = np.concatenate([[0], np.cumsum(np.append(freq[order], freq[-1]))])
            lists.append(coder_cdf.tolist() + [(1 << PRECISION) + 1])
        self._base = np.concatenate([[0], np.cumsum(ks)[:-1]])  # start of each table in the flat maps
        self._rank_of = np.concatenate(rank_of)
        self._symbol_of = np.concatenate(symbol_of)
        lists.append([0, (1 << PRECISION) - 1, 1 << PRECISION, (1 << PRECISION) + 1])  # padding table, ~0 bits/symbol
        self._lists = lists
        self._sizes = [len(x) for x in lists]

    @classmethod
    def from_pmfs(cls, pmfs: Sequence[np.ndarray], precision: int = PRECISION) -> "CdfTables":
        """Build one table per pmf with build_cdf."""
        return cls([build_cdf(p, precision) for p in pmfs])

    def to_array(self) -> np.ndarray:
        """Pack into one (N, maxlen+1) int32 array: column 0 = CDF length, then the CDF, zero padded."""
        width = max(r.size for r in self._cdfs)
        out = np.zeros((len(self._cdfs), width + 1), dtype=np.int32)
        for i, r in enumerate(self._cdfs):
            out[i, 0] = r.size
            out[i, 1 : 1 + r.size] = r
        return out

    def symbol_bits(self, i: int) -> np.ndarray:
        """Ideal code length in bits (K,) of each symbol of table i: -log2 of its frequency (escape bin excluded)."""
        r = self._cdfs[i].astype(np.float64)
        return -np.log2(np.diff(r)[:-1] / r[-1])

    @classmethod
    def from_array(cls, arr: np.ndarray) -> "CdfTables":
        """Inverse of to_array; ValueError if any row is not a valid CDF."""
        a = np.asarray(arr)
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 4 or a.dtype.kind not in "iu":
            raise ValueError(f"CDF table array must be a 2-D integer array of shape (N, >=4), got {a.dtype} {a.shape}")
        rows = []
        for i in range(a.shape[0]):
            n = int(a[i, 0])
            if not 3 <= n <= a.shape[1] - 1:
                raise ValueError(f"CDF {i}: length {n} out of range [3, {a.shape[1] - 1}]")
            rows.append(a[i, 1 : 1 + n])
        return cls(rows)

    def __len__(self) -> int:
        return len(self._cdfs)

    def __getitem__(self, i: int) -> np.ndarray:
        return self._cdfs[i]

    @property
    def num_symbols(self) -> np.ndarray:
        """K of each table (CDF length - 2): symbols 0..K-1 are coded directly, others escape."""
        return self._ks.copy()


def _check_indexes(indexes: np.ndarray, tables: CdfTables) -> np.ndarray:
    idx = np.asarray(indexes)
    if idx.dtype.kind not in "iu":
        raise ValueError(f"indexes must be an integer array, got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= len(tables)):
        raise ValueError(f"indexes must be in [0, {len(tables) - 1}]")
    return idx.reshape(-1).astype(np.int64)


def _coder_args(idx: np.ndarray, tables: CdfTables) -> tuple[np.ndarray, list, list]:
    """Keep only the tables used by this call (pybind11 converts every table passed on each call)."""
    n_tables = len(tables)
    used = np.flatnonzero(np.bincount(idx, minlength=n_tables))
    if used.size == n_tables:
        return idx, tables._lists, tables._sizes
    remap = np.zeros(n_tables, dtype=np.int64)
    remap[used] = np.arange(used.size)
    sel = used.tolist() + [n_tables]  # padding table last
    return remap[idx], [tables._lists[i] for i in sel], [tables._sizes[i] for i in sel]


def _varint_encode(values: np.ndarray) -> bytes:
    """LEB128 (7 bits per byte, little-endian groups, high bit = more) of non-negative ints < 2**35."""
    v = np.asarray(values, dtype=np.uint64)
    if v.size == 0:
        return b""
    nbytes = np.ones(v.size, dtype=np.int64)
    for shift in (7, 14, 21, 28):
        nbytes += v >= (1 << shift)
    group = np.repeat(np.arange(v.size), nbytes)
    starts = np.cumsum(nbytes) - nbytes
    pos = np.arange(group.size) - starts[group]
    out = (v[group] >> (7 * pos).astype(np.uint64)) & np.uint64(0x7F)
    out |= np.where(pos < nbytes[group] - 1, np.uint64(0x80), np.uint64(0))
    return out.astype(np.uint8).tobytes()


def _varint_decode(buf: np.ndarray, count: int) -> tuple[np.ndarray, int]:
    """Decode exactly count LEB128 values from the start of buf; return them and the bytes used."""
    if count == 0:
        return np.zeros(0, dtype=np.int64), 0
    ends = np.flatnonzero(buf[: count * _MAX_VARINT] < 0x80)
    if ends.size < count:
        raise TruncatedError("entropy payload truncated in a varint (escape value or length)")
    ends = ends[:count]
    nbytes = np.diff(ends, prepend=-1)
    if nbytes.max() > _MAX_VARINT:
        raise BitstreamError("entropy payload has an over-long varint")
    used = int(ends[-1]) + 1
    starts = ends + 1 - nbytes
    group = np.repeat(np.arange(count), nbytes)
    pos = np.arange(used) - starts[group]
    parts = (buf[:used].astype(np.int64) & 0x7F) << (7 * pos)
    return np.add.reduceat(parts, starts), used


def encode_varints(values: Sequence[int]) -> bytes:
    """Non-negative ints below 2**35 as concatenated LEB128 varints (the format's `varint`)."""
    v = np.asarray(values, dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= 1 << 35):
        raise ValueError("varint values must be in [0, 2**35)")
    return _varint_encode(v)


def decode_varints(data: bytes, count: int) -> tuple[list[int], int]:
    """The first count varints of data and the number of bytes they took; BitstreamError if malformed."""
    values, used = _varint_decode(np.frombuffer(bytes(data), dtype=np.uint8), count)
    return [int(x) for x in values], used


def encode_symbols(symbols: np.ndarray, indexes: np.ndarray, tables: CdfTables) -> bytes:
    """rANS-code int symbols (any shape) with tables[indexes]; values outside [0, K) go through the escape."""
    sym = np.asarray(symbols)
    if sym.dtype.kind not in "iu":
        raise ValueError(f"symbols must be an integer array, got dtype {sym.dtype}")
    if np.shape(indexes) != sym.shape:
        raise ValueError(f"indexes shape {np.shape(indexes)} differs from symbols shape {sym.shape}")
    idx = _check_indexes(indexes, tables)
    n = idx.size
    if n == 0:
        return b""
    if sym.min() < _INT32_MIN or sym.max() > _INT32_MAX:
        raise ValueError("symbols must fit in int32")
    sym = sym.reshape(-1).astype(np.int64)
    k = tables._ks[idx]
    escaped = (sym < 0) | (sym >= k)
    coded = k.copy()
    direct = ~escaped
    coded[direct] = tables._rank_of[tables._base[idx[direct]] + sym[direct]]
    idx, lists, sizes = _coder_args(idx, tables)
    if n < _MIN_CODED:
        pad = _MIN_CODED - n
        coded = np.concatenate([coded, np.zeros(pad, dtype=np.int64)])
        idx = np.concatenate([idx, np.full(pad, len(lists) - 1, dtype=np.int64)])
    rans = _rans().RansEncoder().encode_with_indexes(
        coded.tolist(), idx.tolist(), lists, sizes, [0] * len(lists)
    )
    esc_sym, esc_k = sym[escaped], k[escaped]
    raw = np.where(esc_sym < 0, -2 * esc_sym - 1, 2 * (esc_sym - esc_k))
    return _varint_encode(np.array([len(rans) // 4])) + rans + _varint_encode(raw)


def decode_symbols(data: bytes, indexes: np.ndarray, tables: CdfTables) -> np.ndarray:
    """Inverse of encode_symbols: int32 array shaped like indexes; BitstreamError on malformed data."""
    return decode_symbols_staged(data, indexes, tables)[0]


def decode_symbols_staged(data: bytes, indexes: np.ndarray, tables: CdfTables,
                          then: Callable[[np.ndarray], np.ndarray] | None = None,
                          then_count: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode one encode_symbols stream whose symbols are two parts: the first coded with tables[indexes], the
    second (then_count symbols) with the tables then(first part's values) returns, an integer array of that
    size (a decoder that learns the second part's tables from the first part, as model v2's y from its z).
    Returns (first part shaped like indexes, second part shaped like then's result, or None without then).
    BitstreamError on malformed data, or if then's indexes are out of range or the wrong size."""
    idx = _check_indexes(indexes, tables)
    shape = np.shape(indexes)
    n = idx.size
    total = n + (then_count if then is not None else 0)
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    if total == 0:
        if buf.size:
            raise BitstreamError("entropy payload has data but no symbols to decode")
        return np.zeros(shape, dtype=np.int32), (None if then is None else then(np.zeros(shape, np.int32)))
    (n_words,), head = _varint_decode(buf, 1)
    start = head
    end = start + 4 * int(n_words)
    if n_words < 2:
        raise BitstreamError("entropy payload too short")
    if end > buf.size:
        raise TruncatedError("entropy payload truncated")
    # Guard: the C++ decoder does no bounds checks. It reads 2 words at init and at most one word per
    # symbol (bypass mode is unreachable with our tables), so total + 2 words of zero padding bound every read.
    rans = buf[start:end].tobytes()
    need = 4 * (total + 4)
    if len(rans) < need:
        rans += bytes(need - len(rans))
    decoder = _rans().RansDecoder()
    decoder.set_stream(rans)
    tail = buf[end:]
    used = 0

    def part(idx: np.ndarray) -> np.ndarray:
        nonlocal used
        k = tables._ks[idx]
        cidx, lists, sizes = _coder_args(idx, tables)
        out = np.asarray(decoder.decode_stream(cidx.tolist(), lists, sizes, [0] * len(lists)), dtype=np.int64)
        escaped = out == k
        direct = ~escaped
        out[direct] = tables._symbol_of[tables._base[idx[direct]] + out[direct]]
        n_esc = int(escaped.sum())
        raw, u = _varint_decode(tail[used:], n_esc)
        used += u
        if n_esc:
            esc_k = k[escaped]
            values = np.where(raw & 1, -(raw >> 1) - 1, (raw >> 1) + esc_k)
            if values.min() < _INT32_MIN or values.max() > _INT32_MAX:
                raise BitstreamError("entropy payload escape value out of int32 range")
            out[escaped] = values
        return out.astype(np.int32)

    first = part(idx).reshape(shape) if n else np.zeros(shape, dtype=np.int32)
    second = None
    if then is not None:
        nxt = np.asarray(then(first))
        if nxt.size != then_count:
            raise BitstreamError(f"second part has {nxt.size} symbols, {then_count} were declared")
        second = part(_check_indexes(nxt, tables)).reshape(nxt.shape) if then_count else nxt.astype(np.int32)
    if used != tail.size:
        raise BitstreamError("entropy payload has trailing bytes")
    return first, second
