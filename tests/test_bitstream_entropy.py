"""Tests for rANS entropy coding: CDF building/storage, round trips, escapes and coded size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitstream import BitstreamError, CdfTables, build_cdf, decode_symbols, decode_varints, encode_symbols, encode_varints


def skewed_pmf(k: int, rng: np.random.Generator) -> np.ndarray:
    """Discretized Laplacian centred somewhere in [0, k)."""
    x = np.arange(k) - rng.integers(0, k)
    p = np.exp(-np.abs(x) / rng.uniform(0.3, max(0.5, k / 8)))
    return p / p.sum()


def make_pmf(kind: str, k: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "uniform":
        return np.full(k, 1.0 / k)
    if kind == "skewed":
        return skewed_pmf(k, rng)
    return rng.dirichlet(np.full(k, 0.2))  # spiky, with many near-zero probabilities


def check_cdf(cdf: np.ndarray, k: int, precision: int = 16) -> None:
    assert cdf.dtype == np.int32 and cdf.shape == (k + 2,)
    assert cdf[0] == 0 and cdf[-1] == 1 << precision
    assert np.all(np.diff(cdf) >= 1)


@pytest.mark.parametrize("k", [1, 2, 3, 17, 1024, 4096])
@pytest.mark.parametrize("kind", ["uniform", "skewed", "dirichlet"])
def test_build_cdf_shape_and_accuracy(k, kind):
    rng = np.random.default_rng(k)
    p = make_pmf(kind, k, rng)
    cdf = build_cdf(p)
    check_cdf(cdf, k)
    q = np.diff(cdf) / 65536.0
    assert q[-1] == 1 / 65536  # escape bin: the minimum mass
    # Cross-entropy penalty of the quantized model: at most what giving every bin one extra count
    # (the unavoidable minimum frequency) costs, plus rounding.
    penalty = float(np.sum(p * np.log2(p / q[:k], where=p > 0, out=np.zeros(k))))
    assert 0 <= penalty < -np.log2(1 - (k + 1) / 65536) + 0.002


def test_build_cdf_zero_probabilities_and_precision():
    cdf = build_cdf(np.array([0.0, 1.0, 0.0, 0.0]))
    check_cdf(cdf, 4)
    assert np.diff(cdf)[1] == 65536 - 4  # every other bin keeps the minimum frequency 1
    cdf12 = build_cdf(np.array([3.0, 1.0]), precision=12)  # un-normalized input is fine
    check_cdf(cdf12, 2, precision=12)
    assert abs(np.diff(cdf12)[0] / np.diff(cdf12)[1] - 3) < 0.01


@pytest.mark.parametrize(
    "pmf,precision",
    [
        (np.zeros(3), 16),
        (np.array([0.5, -0.1, 0.6]), 16),
        (np.array([0.5, np.nan]), 16),
        (np.array([0.5, np.inf]), 16),
        (np.ones((2, 2)), 16),
        (np.ones(0), 16),
        (np.ones(70000), 16),
        (np.ones(300), 8),
        (np.ones(3), 17),
        (np.ones(3), 0),
    ],
)
def test_build_cdf_rejects_bad_input(pmf, precision):
    with pytest.raises(ValueError):
        build_cdf(pmf, precision)


def test_tables_array_round_trip_and_validation():
    rng = np.random.default_rng(0)
    tables = CdfTables.from_pmfs([make_pmf("skewed", k, rng) for k in (2, 9, 300)] + [np.ones(4)])
    arr = tables.to_array()
    assert arr.dtype == np.int32 and arr.shape == (4, 302 + 1)
    assert list(arr[:, 0]) == [4, 11, 302, 6]
    again = CdfTables.from_array(arr)
    assert len(again) == 4 and np.array_equal(again.to_array(), arr)
    assert list(again.num_symbols) == [2, 9, 300, 4]
    bad = arr.copy()
    bad[1, 3] = bad[1, 2]  # not strictly increasing
    with pytest.raises(ValueError, match="increasing"):
        CdfTables.from_array(bad)
    bad = arr.copy()
    bad[0, 1] = 5  # does not start at 0
    with pytest.raises(ValueError, match="start"):
        CdfTables.from_array(bad)
    bad = arr.copy()
    bad[0, 4] = 60000  # does not end at a power of two
    with pytest.raises(ValueError):
        CdfTables.from_array(bad)
    bad = arr.copy()
    bad[2, 0] = 400  # length beyond the row
    with pytest.raises(ValueError, match="length"):
        CdfTables.from_array(bad)
    for junk in (arr[0], arr.astype(np.float32), np.zeros((0, 5), np.int32)):
        with pytest.raises(ValueError):
            CdfTables.from_array(junk)
    with pytest.raises(ValueError):
        CdfTables([])


@st.composite
def coding_cases(draw):
    """Random tables (K in 2..4096, uniform/skewed/spiky) and symbols mixing them, with some escapes."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_tables = draw(st.integers(1, 4))
    ks = [draw(st.integers(2, 4096)) for _ in range(n_tables)]
    pmfs = [make_pmf(draw(st.sampled_from(["uniform", "skewed", "dirichlet"])), k, rng) for k in ks]
    n = draw(st.integers(0, 3000))
    escape_rate = draw(st.sampled_from([0.0, 0.01, 0.3, 1.0]))
    idx = rng.integers(0, n_tables, size=n)
    sym = np.empty(n, dtype=np.int64)
    for t, p in enumerate(pmfs):
        sel = idx == t
        sym[sel] = rng.choice(ks[t], size=int(sel.sum()), p=p)
    esc = rng.random(n) < escape_rate
    big = rng.choice([1, 100, 2**20, 2**31 - 1], size=n)
    below = -rng.integers(1, big, endpoint=True)
    above = np.array(ks)[idx] + rng.integers(0, big)
    outside = np.where(rng.random(n) < 0.5, below, above)
    sym[esc] = np.clip(outside[esc], -(2**31), 2**31 - 1)
    shape = draw(st.sampled_from(["flat", "2d"]))
    if shape == "2d" and n % 3 == 0:
        sym, idx = sym.reshape(3, -1), idx.reshape(3, -1)
    return CdfTables.from_pmfs(pmfs), sym, idx


@settings(max_examples=60, deadline=None)
@given(coding_cases())
def test_round_trip(case):
    tables, sym, idx = case
    data = encode_symbols(sym, idx, tables)
    out = decode_symbols(data, idx, tables)
    assert out.dtype == np.int32 and out.shape == idx.shape
    assert np.array_equal(out, sym)


def test_escape_values_including_int32_extremes():
    tables = CdfTables.from_pmfs([np.array([0.7, 0.2, 0.1]), np.ones(5)])
    sym = np.array([-1, 3, 4, 5, -(2**31), 2**31 - 1, 2**30 + 5, -(2**27), 0, 1, 2, 100], dtype=np.int64)
    idx = np.array([0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1])
    out = decode_symbols(encode_symbols(sym, idx, tables), idx, tables)
    assert np.array_equal(out, sym)
    many = np.full(20000, 2**27)  # many large escapes (overflowed CompressAI's own encoder buffer)
    zeros = np.zeros(20000, dtype=np.int64)
    assert np.array_equal(decode_symbols(encode_symbols(many, zeros, tables), zeros, tables), many)


def test_small_and_empty_inputs():
    tables = CdfTables.from_pmfs([np.array([0.5, 0.5])])
    for n in range(0, 10):
        sym = np.arange(n) % 3 - 1  # includes escapes -1 and 2 (K = 2)
        idx = np.zeros(n, dtype=np.int32)
        data = encode_symbols(sym, idx, tables)
        assert (data == b"") == (n == 0)
        assert np.array_equal(decode_symbols(data, idx, tables), sym)
    empty = decode_symbols(b"", np.zeros((0, 4), dtype=np.int64), tables)
    assert empty.shape == (0, 4) and empty.dtype == np.int32


def test_lower_precision_tables_code_like_scaled_ones():
    p = np.array([0.6, 0.3, 0.1])
    t12 = CdfTables([build_cdf(p, precision=12)])
    t16 = CdfTables([build_cdf(p, precision=12).astype(np.int64) * 16])
    rng = np.random.default_rng(1)
    sym = rng.choice(3, size=500, p=p)
    idx = np.zeros(500, dtype=np.int64)
    data = encode_symbols(sym, idx, t12)
    assert data == encode_symbols(sym, idx, t16)
    assert np.array_equal(decode_symbols(data, idx, t12), sym)


def test_coded_size_close_to_empirical_entropy():
    rng = np.random.default_rng(123)
    k = 64
    sym = rng.choice(k, size=10**5, p=skewed_pmf(k, rng))
    counts = np.bincount(sym, minlength=k)
    tables = CdfTables.from_pmfs([counts / counts.sum()])
    idx = np.zeros(sym.size, dtype=np.int64)
    data = encode_symbols(sym, idx, tables)
    nz = counts[counts > 0]
    entropy_bytes = float(-(nz * np.log2(nz / sym.size)).sum()) / 8
    assert len(data) <= entropy_bytes * 1.01 + 64
    assert len(data) >= entropy_bytes - 16  # sanity: cannot beat the entropy
    assert np.array_equal(decode_symbols(data, idx, tables), sym)


def test_symbol_bits_are_the_code_lengths_the_coder_spends():
    # the encoder's entropy-constrained code choice prices symbols with symbol_bits: it must be what rANS spends
    rng = np.random.default_rng(5)
    k = 32
    pmf = skewed_pmf(k, rng)
    tables = CdfTables.from_pmfs([np.full(k, 1.0 / k), pmf])
    np.testing.assert_allclose(tables.symbol_bits(0), np.log2(k), atol=1e-3)   # uniform: log2 K each
    bits = tables.symbol_bits(1)
    assert bits.shape == (k,) and np.all(bits > 0)
    assert np.argmin(bits) == np.argmax(pmf)
    sym = rng.choice(k, size=20000, p=pmf)
    idx = np.ones(sym.size, dtype=np.int64)
    ideal = bits[sym].sum() / 8
    assert abs(len(encode_symbols(sym, idx, tables)) - ideal) <= 0.01 * ideal + 16


def test_invalid_arguments():
    tables = CdfTables.from_pmfs([np.ones(4)])
    with pytest.raises(ValueError, match="indexes"):
        encode_symbols(np.zeros(3, int), np.array([0, 1, 0]), tables)
    with pytest.raises(ValueError, match="indexes"):
        decode_symbols(b"\x02" + bytes(8), np.array([-1]), tables)
    with pytest.raises(ValueError, match="shape"):
        encode_symbols(np.zeros(3, int), np.zeros(4, int), tables)
    with pytest.raises(ValueError, match="integer"):
        encode_symbols(np.zeros(3), np.zeros(3, int), tables)
    with pytest.raises(ValueError, match="int32"):
        encode_symbols(np.array([2**31]), np.zeros(1, int), tables)


def test_malformed_payloads_raise_bitstream_errors():
    tables = CdfTables.from_pmfs([np.array([0.9, 0.1])])
    idx = np.zeros(50, dtype=np.int64)
    sym = np.where(np.arange(50) % 10 == 0, 7, 0)  # five escapes
    data = encode_symbols(sym, idx, tables)
    with pytest.raises(BitstreamError):
        decode_symbols(data + b"\x00", idx, tables)  # trailing byte
    with pytest.raises(BitstreamError):
        decode_symbols(data[:-1], idx, tables)  # missing escape byte
    with pytest.raises(BitstreamError):
        decode_symbols(b"", idx, tables)
    with pytest.raises(BitstreamError):
        decode_symbols(b"\xff\xff\xff\xff\xff\xff", idx, tables)
    with pytest.raises(BitstreamError):
        decode_symbols(b"\x00", np.zeros(0, dtype=np.int64), tables)  # data for zero symbols


def test_varints_round_trip_and_refuse_bad_input():
    values = [0, 1, 127, 128, 300, 2 ** 21, 2 ** 35 - 1]
    data = encode_varints(values) + b"tail"
    assert decode_varints(data, len(values)) == (values, len(data) - 4)
    assert encode_varints([127, 128]) == b"\x7f\x80\x01"
    with pytest.raises(BitstreamError):
        decode_varints(b"\x80\x80", 1)                     # truncated
    with pytest.raises(BitstreamError):
        decode_varints(b"\xff" * 5 + b"\x01", 1)           # over-long
    with pytest.raises(ValueError):
        encode_varints([-1])
    with pytest.raises(ValueError):
        encode_varints([2 ** 35])
