"""Benchmark: rANS encode/decode throughput and coded size vs entropy (`python -m bitstream.bench`)."""

from __future__ import annotations

import argparse
import time

import numpy as np

from .entropy import CdfTables, decode_symbols, encode_symbols


def _best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run(k: int = 1024, n: int = 10**6, tables: int = 1, repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Code n symbols over a K-letter skewed (discretized Laplacian) alphabet; return measured figures."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(2.0, k / 8, tables)
    x = np.arange(k) - k // 2
    pmfs = [np.exp(-np.abs(x) / s) for s in scales]
    pmfs = [p / p.sum() for p in pmfs]
    indexes = rng.integers(0, tables, size=n)
    symbols = np.empty(n, dtype=np.int64)
    for t, p in enumerate(pmfs):
        sel = indexes == t
        symbols[sel] = rng.choice(k, size=int(sel.sum()), p=p)
    # Tables from the empirical pmf of the data, as a trained model would freeze them.
    counts = [np.bincount(symbols[indexes == t], minlength=k) for t in range(tables)]
    cdfs = CdfTables.from_pmfs([c / c.sum() for c in counts])
    entropy_bits = 0.0
    for c in counts:
        nz = c[c > 0]
        entropy_bits += float(-(nz * np.log2(nz / nz.sum())).sum())
    enc_s, data = _best_time(lambda: encode_symbols(symbols, indexes, cdfs), repeats)
    dec_s, out = _best_time(lambda: decode_symbols(data, indexes, cdfs), repeats)
    if not np.array_equal(out, symbols):
        raise RuntimeError("round trip failed")
    return {
        "symbols": n,
        "encode_sym_per_s": n / enc_s,
        "decode_sym_per_s": n / dec_s,
        "coded_bits_per_sym": 8 * len(data) / n,
        "entropy_bits_per_sym": entropy_bits / n,
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--k", type=int, default=1024, help="alphabet size K")
    ap.add_argument("--n", type=int, default=10**6, help="number of symbols")
    ap.add_argument("--tables", type=int, default=1, help="number of CDF tables mixed in one call")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    from compressai import ans  # noqa: F401  (import torch/compressai before timing)

    r = run(a.k, a.n, a.tables, a.repeats)
    print(f"K={a.k} n={r['symbols']} tables={a.tables} (best of {a.repeats})")
    print(f"encode: {r['encode_sym_per_s'] / 1e6:.2f} M symbols/s")
    print(f"decode: {r['decode_sym_per_s'] / 1e6:.2f} M symbols/s")
    overhead = 100 * (r["coded_bits_per_sym"] / r["entropy_bits_per_sym"] - 1)
    print(
        f"size: {r['coded_bits_per_sym']:.4f} bits/symbol vs empirical entropy "
        f"{r['entropy_bits_per_sym']:.4f} ({overhead:+.3f}%)"
    )


if __name__ == "__main__":
    main()
