"""One-file training pack (.ncpack): a prepared data root, losslessly compressed under a size budget, with splits."""
from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ._command import run_command

MAGIC = b"NCPK"
FORMAT_VERSION = 1
HEADER = struct.Struct("!4sBQ")  # magic, format version, byte length of the JSON index that follows
# (photo short side, largest short side of video frames, largest short side of procedural frames), best first.
# Videos are downscaled by powers of two until they fit their cap; photos are area-downscaled to their short side.
PLANS = ((512, 360, 360), (512, 360, 180), (448, 360, 180), (384, 360, 180), (360, 360, 180), (512, 272, 180),
         (448, 272, 180), (384, 272, 180), (360, 272, 180), (320, 272, 180), (256, 180, 180), (256, 180, 128),
         (192, 136, 128), (128, 128, 128))


def _codec() -> str:
    from PIL import features

    return "webp" if features.check("webp") else "png"


def encode_image(img: np.ndarray, codec: str) -> bytes:
    """Lossless bytes of an (H,W,3) uint8 image: WebP lossless (about half the size of PNG on video) or PNG."""
    from PIL import Image

    buf = io.BytesIO()
    if codec == "webp":
        Image.fromarray(img).save(buf, format="WEBP", lossless=True, method=2, quality=50, exact=True)
    else:
        Image.fromarray(img).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def area_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Exact area (box filter) downscale of an (H,W,3) uint8 image to size (w, h)."""
    from PIL import Image

    if (img.shape[1], img.shape[0]) == tuple(size):
        return img
    return np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize(size, Image.Resampling.BOX))


# --------------------------------------------------------------------------- choosing what goes in

def _pow2_factor(short: int, cap: int) -> int:
    k = 1
    while short / k > cap and short / (2 * k) >= 64:
        k *= 2
    return k


def pack_items(root: Path, plan: tuple[int, int, int]) -> list[dict]:
    """One item per clip and per photo of the prepared root: its manifest entry and the (w, h) it is stored at."""
    from .data.prepare import load_manifest

    photo_short, video_cap, proc_cap = plan
    entries = load_manifest(root)
    items, photos = [], {}
    for e in entries:
        if e["source"] == "photo":
            photos.setdefault(e["name"], []).append(e)
            continue
        h, w = e["shape"][1:3]
        k = _pow2_factor(min(h, w), video_cap if e["source"] == "video" else proc_cap)
        items.append({"entry": e, "size": (w // k, h // k), "downscale": k})
    for name, es in photos.items():  # the smallest stored scale that still covers photo_short, else the largest
        es = sorted(es, key=lambda e: min(e["shape"][:2]))
        e = next((e for e in es if min(e["shape"][:2]) >= photo_short), es[-1])
        h, w = e["shape"][:2]
        f = min(1.0, photo_short / min(h, w))
        items.append({"entry": e, "size": (max(1, round(w * f)), max(1, round(h * f))), "downscale": 1 / f})
    return sorted(items, key=lambda it: (it["entry"]["source"], it["entry"]["split"], it["entry"]["name"]))


def _encode_item(root: Path, it: dict, codec: str, cache: dict) -> list[bytes]:
    e = it["entry"]
    key = (e["path"], tuple(it["size"]))
    if key not in cache:
        a = np.load(root / e["path"], mmap_mode="r")
        frames = a[None] if e["source"] == "photo" else a
        cache[key] = [encode_image(area_resize(np.asarray(f), it["size"]), codec) for f in frames]
    return cache[key]


# --------------------------------------------------------------------------- file format

def write_pack(path: str | Path, index: dict, blobs: list[bytes]) -> None:
    """Write header + JSON index + blobs atomically: a temporary file in the same folder, fsync, rename."""
    path = Path(path)
    head = json.dumps(index, sort_keys=True).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(HEADER.pack(MAGIC, FORMAT_VERSION, len(head)))
            f.write(head)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_index(path: str | Path) -> tuple[dict, int]:
    """(index, offset of the data section) of a pack; ValueError if it is not a complete pack of a known version."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(HEADER.size)
        if len(raw) < HEADER.size:
            raise ValueError(f"{path}: not an ncodec pack (only {len(raw)} bytes)")
        magic, version, n = HEADER.unpack(raw)
        if magic != MAGIC:
            raise ValueError(f"{path}: not an ncodec pack (magic {magic!r}, expected {MAGIC!r})")
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: pack format version {version} is not supported (this reader: {FORMAT_VERSION})")
        if HEADER.size + n > size:
            raise ValueError(f"{path}: truncated pack (index of {n} bytes does not fit in {size})")
        try:
            index = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: corrupt pack index ({e})") from None
    if not isinstance(index, dict) or not isinstance(index.get("items"), list) or "data_bytes" not in index:
        raise ValueError(f"{path}: corrupt pack index (no items)")
    if HEADER.size + n + index["data_bytes"] != size:
        raise ValueError(f"{path}: truncated or padded pack ({size} bytes, "
                         f"expected {HEADER.size + n + index['data_bytes']})")
    return index, HEADER.size + n


def iter_pack(path: str | Path, split: str | None = None) -> Iterator[tuple[dict, np.ndarray]]:
    """(item, uint8 array) per item of a pack: (T,H,W,3) clips, (H,W,3) photos; checksums are verified."""
    index, base = read_index(path)
    with open(path, "rb") as f:
        for it in index["items"]:
            if split is not None and it["split"] != split:
                continue
            f.seek(base + it["offset"])
            data = f.read(sum(it["frames"]))
            if zlib.crc32(data) != it["crc32"]:
                raise ValueError(f"{path}: checksum mismatch in item {it['source']}/{it['name']} ({it['split']})")
            frames, pos = [], 0
            try:
                for n in it["frames"]:
                    frames.append(decode_image(data[pos:pos + n]))
                    pos += n
            except OSError as e:
                raise ValueError(f"{path}: undecodable frame in {it['source']}/{it['name']}: {e}") from None
            a = np.stack(frames)
            if list(a.shape) != it["shape"]:
                raise ValueError(f"{path}: {it['name']} decodes to {a.shape}, index says {it['shape']}")
            yield it, (a[0] if it["source"] == "photo" else a)


# --------------------------------------------------------------------------- building

def build_pack(data_root: str | Path, out: str | Path, max_mb: float = 60.0,
               log: Callable[[str], None] = print) -> dict:
    """Pack a prepared root into `out` at the best plan whose file fits in max_mb (10^6 bytes); returns the index."""
    root = Path(data_root)
    if not (root / "manifest.json").exists():
        raise FileNotFoundError(f"{root}/manifest.json not found; run python -m neuralcodec.training.data.prepare")
    codec, cache = _codec(), {}
    limit = int(max_mb * 1e6)
    for plan in PLANS:
        items = pack_items(root, plan)
        if not items:
            raise ValueError(f"{root}: the manifest lists no data")
        blobs, index_items, offset = [], [], 0
        for it in items:
            frames = _encode_item(root, it, codec, cache)
            e = it["entry"]
            w, h = it["size"]
            data = b"".join(frames)
            rec = {"source": e["source"], "split": e["split"], "name": e["name"], "shape": [len(frames), h, w, 3],
                   "offset": offset, "frames": [len(b) for b in frames], "crc32": zlib.crc32(data),
                   "downscale": round(float(it["downscale"]), 4), "origin": e.get("origin", e["path"])}
            if e["source"] != "photo":
                rec["segments"] = e.get("segments") or [[0, len(frames)]]
            index_items.append(rec)
            blobs.append(data)
            offset += len(data)
            if offset > limit:  # already too big: no need to encode the rest at this plan
                break
        else:
            index = {"format": "ncpack", "version": FORMAT_VERSION, "codec": codec, "plan": list(plan),
                     "data_bytes": offset, "items": index_items}
            total = HEADER.size + len(json.dumps(index, sort_keys=True).encode()) + offset
            if total <= limit:
                log(f"plan {plan} (photo short side, video cap, procedural cap in px): {total / 1e6:.1f} MB")
                write_pack(out, index, blobs)
                return index
        log(f"plan {plan} (photo short side, video cap, procedural cap in px): over {max_mb} MB")
    raise ValueError(f"{root} does not fit in {max_mb} MB even at the smallest plan {PLANS[-1]}; raise --max-mb")


def summary(index: dict, size: int) -> str:
    lines = [f"{'source':<11}{'split':<7}{'items':>6}{'frames':>8}{'MB':>8}  sizes"]
    for src in ("video", "photo", "procedural"):
        for sp in ("train", "val"):
            its = [i for i in index["items"] if i["source"] == src and i["split"] == sp]
            if its:
                mb = sum(sum(i["frames"]) for i in its) / 1e6
                sizes = sorted({f"{i['shape'][2]}x{i['shape'][1]}" for i in its})
                sizes_s = ", ".join(sizes[:3]) + (" ..." if len(sizes) > 3 else "")
                lines.append(f"{src:<11}{sp:<7}{len(its):>6}{sum(i['shape'][0] for i in its):>8}{mb:>8.1f}  {sizes_s}")
    lines.append(f"total {size / 1e6:.1f} MB ({index['codec']} lossless, plan {index['plan']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neuralcodec.training.pack", description=__doc__)
    ap.add_argument("--data-root", default="data/", help="prepared data root (default data/)")
    ap.add_argument("-o", "--output", required=True, help="pack file to write (.ncpack)")
    ap.add_argument("--max-mb", type=float, default=60.0, help="hard size limit in MB of 10^6 bytes (default 60)")
    ap.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    a = ap.parse_args(argv)

    def body() -> None:
        if Path(a.output).exists() and not a.force:
            raise FileExistsError(f"{a.output} exists (use --force to overwrite)")
        index = build_pack(a.data_root, a.output, a.max_mb)
        print(summary(index, Path(a.output).stat().st_size))

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
