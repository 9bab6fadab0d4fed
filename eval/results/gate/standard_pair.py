"""BD-rate of ncodec in one standard-set results.json against ncodec in another (same clips), per clip and metric.

    PYTHONPATH=. python eval/results/gate/standard_pair.py OLD_results.json NEW_results.json
(e.g. OLD from `git show HEAD~1:eval/results/results.json > /tmp/old.json`); negative = NEW needs fewer bits.
"""
import json
import sys
import warnings

from eval.bdrate import bd_rate


def main(old: str, new: str) -> None:
    warnings.simplefilter("ignore")
    a, b = (json.load(open(p))["points"] for p in (old, new))
    clips = sorted({p["clip"] for p in b if p["codec"] == "ncodec"})
    for m in ("psnr_rgb", "psnr_yuv", "msssim"):
        vals = []
        for clip in clips:
            pa = [p for p in a if p["clip"] == clip and p["codec"] == "ncodec"]
            pb = [p for p in b if p["clip"] == clip and p["codec"] == "ncodec"]
            r = bd_rate([p["bpp"] for p in pa], [p[m] for p in pa], [p["bpp"] for p in pb], [p[m] for p in pb])
            vals.append(f"{clip} {r['value']:+.1f} % (overlap {r['overlap']:.0%})")
        print(f"{m:9s} " + ", ".join(vals))


if __name__ == "__main__":
    main(*sys.argv[1:3])
