"""BD-rate of ncodec in one standard-set results.json against ncodec in another (same clips), per clip and metric.

    PYTHONPATH=. python eval/results/gate/standard_pair.py OLD_results.json NEW_results.json
(e.g. OLD from `git show HEAD~1:eval/results/results.json > /tmp/old.json`); negative = NEW needs fewer bits.
"""
import json
import sys
import warnings

from eval.compare import _fmt, compare


def ncodec_points(path: str) -> dict:
    """A results.json's ncodec points in eval.compare's form: {"clips": {clip: [point, ...]}}."""
    clips: dict[str, list] = {}
    for p in json.load(open(path))["points"]:
        if p["codec"] == "ncodec":
            clips.setdefault(p["clip"], []).append(p)
    return {"clips": clips}


def main(old: str, new: str) -> None:
    warnings.simplefilter("ignore")
    res = compare(ncodec_points(new), ncodec_points(old), ("psnr_rgb", "psnr_yuv", "msssim"))
    for metric, r in res.items():
        per = ", ".join(f"{c} {_fmt(v)} (overlap {v.get('overlap', 0):.0%})" for c, v in r["clips"].items())
        print(f"{metric:9s} mean {_fmt(r['mean'])}   ({per})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
