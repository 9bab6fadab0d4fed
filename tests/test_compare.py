"""The ship gate (python -m eval.compare) on saved RD points: BD-rates, verdict and exit status."""
from __future__ import annotations

import json

from eval.compare import EXIT_LOSES, compare, main


def _points(name: str, shift_db: float, scale: float = 1.0) -> dict:
    bpp = [0.05, 0.1, 0.2, 0.4]
    pts = [{"quality": i + 1, "bpp": b * scale, "psnr_rgb": 30 + 3 * i + shift_db, "msssim": 0.9 + 0.02 * i}
           for i, b in enumerate(bpp)]
    return {"model": name, "sha256": name * 8, "clips": {"a": pts, "b": pts}}


def test_better_model_wins_and_exit_codes(tmp_path, capsys):
    old, new = _points("old", 0.0), _points("new", 0.0, scale=0.8)      # same quality with 20 % fewer bits
    res = compare(new, old)
    assert -21 < res["psnr_rgb"]["mean"]["value"] < -19 and res["msssim"]["mean"]["value"] < 0
    (tmp_path / "new.json").write_text(json.dumps(new))
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert main([str(tmp_path / "new.json"), str(tmp_path / "old.json")]) == 0
    assert "NEW wins" in capsys.readouterr().out
    assert main([str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == EXIT_LOSES
    assert "does not win" in capsys.readouterr().out


def test_no_overlap_does_not_win(tmp_path, capsys):
    old, new = _points("old", 0.0), _points("new", -20.0)
    (tmp_path / "new.json").write_text(json.dumps(new))
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert main([str(tmp_path / "new.json"), str(tmp_path / "old.json")]) == EXIT_LOSES
    assert "n/a" in capsys.readouterr().out
