"""``talkbench inspect``: what is in a prepared output folder, and a contact sheet to eyeball it.

Reads the folder through :class:`talkbench.shards.ShardReader`: clips.parquet whole (one row per clip)
but only the columns it needs from the frame shards (pyarrow.dataset column projection), so it stays
cheap on large outputs. A folder without a manifest yet (a run still going) can be inspected.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from talkbench.errors import TalkbenchError
from talkbench.schema import ALL_AUS, au_column, frame_array, image_column
from talkbench.shards import ShardReader

PERCENTILES = (5, 25, 50, 75, 95)
CLIP_QUALITY = ("face_found_ratio", "n_interpolated", "face_size_mean", "det_conf_mean", "blur_mean", "av_diff_s",
                "duration_s")


def frames_dataset(shards_dir: str | Path) -> ds.Dataset | None:
    return ShardReader(shards_dir, require_manifest=False).frames_dataset()


def distribution(values: Any) -> dict[str, Any]:
    """count / mean / std / percentiles of the finite values (nulls and NaN left out)."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if not arr.size:
        return {"count": 0}
    pct = np.percentile(arr, PERCENTILES)
    return {"count": int(arr.size), "mean": float(arr.mean()), "std": float(arr.std()),
            **{f"p{p}": float(v) for p, v in zip(PERCENTILES, pct, strict=True)}}


def _column_values(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


def summarize(shards_dir: str | Path) -> dict[str, Any]:
    """The summary ``inspect`` prints: a plain dict, JSON-ready."""
    reader = ShardReader(shards_dir, require_manifest=False)  # an unfinished run can be inspected too
    clips = reader.clips([
        "clip_id", "speaker_id", "split", "status", "error_kind", "n_frames", *CLIP_QUALITY,
    ]).to_pandas()
    manifest = reader.manifest
    by_reason: dict[str, int] = {}
    for (status, kind), n in clips.groupby(["status", clips["error_kind"].fillna("-")]).size().items():
        by_reason[f"{status}/{kind}" if status != "ok" else "ok"] = int(n)
    usable = clips[clips["status"] != "failed"]
    splits = {
        split: {"clips": int(len(g)), "speakers": int(g["speaker_id"].nunique()), "frames": int(g["n_frames"].sum())}
        for split, g in usable.groupby("split")
    }
    out: dict[str, Any] = {
        "output": str(Path(shards_dir)),
        "dataset": manifest.get("dataset"),
        "schema_version": manifest.get("schema_version"),
        "config_hash": manifest.get("config_hash"),
        "clips": {s: int((clips["status"] == s).sum()) for s in ("ok", "partial", "failed")},
        "clips_by_reason": by_reason,
        "frames": int(clips["n_frames"].fillna(0).sum()),
        "speakers": int(usable["speaker_id"].nunique()),
        "splits": splits,
        "clip_quality": {c: distribution(usable[c]) for c in CLIP_QUALITY},
    }
    dataset = reader.frames_dataset()
    if dataset is not None:
        au_cols = [au_column(a) for a in ALL_AUS]
        table = dataset.to_table(columns=[*au_cols, "face_found", "face_interpolated", "blur", "face_size"])
        out["aus"] = {a: distribution(_column_values(table, au_column(a))) for a in ALL_AUS}
        out["frame_quality"] = {
            "face_found_rate": _rate(table.column("face_found")),
            "interpolated_rate": _rate(table.column("face_interpolated")),
            "blur": distribution(_column_values(table, "blur")),
            "face_size": distribution(_column_values(table, "face_size")),
        }
    return out


def _rate(col: pa.ChunkedArray) -> float | None:
    valid = col.drop_null()
    return None if not len(valid) else float(np.mean(valid.to_numpy(zero_copy_only=False)))


def format_summary(s: dict[str, Any]) -> str:
    lines = [f"{s['output']}  dataset={s['dataset']}  schema={s['schema_version']}  config={s['config_hash']}"]
    c = s["clips"]
    lines.append(f"clips: {c['ok']} ok, {c['partial']} partial, {c['failed']} failed; "
                 f"{s['frames']} frames; {s['speakers']} speakers")
    lines.append("by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(s["clips_by_reason"].items())))
    for split, v in sorted(s["splits"].items()):
        lines.append(f"  {split:<6} {v['clips']:>6} clips {v['speakers']:>5} speakers {v['frames']:>9} frames")

    def row(name: str, d: dict[str, Any]) -> str:
        if not d.get("count"):
            return f"  {name:<18} (no values)"
        return (f"  {name:<18} n={d['count']:<8} mean={d['mean']:<9.3g} " +
                " ".join(f"p{p}={d[f'p{p}']:.3g}" for p in PERCENTILES))

    if "aus" in s:
        lines.append("AU intensities (per frame):")
        lines += [row(au_column(a), d) for a, d in s["aus"].items()]
    lines.append("clip quality:")
    lines += [row(k, d) for k, d in s["clip_quality"].items()]
    if "frame_quality" in s:
        fq = s["frame_quality"]
        lines.append(f"frame quality: face found {_pct(fq['face_found_rate'])}, "
                     f"interpolated {_pct(fq['interpolated_rate'])}")
        lines += [row("blur", fq["blur"]), row("face_size", fq["face_size"])]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


# -- contact sheet ----------------------------------------------------------------------------------
def contact_sheet(shards_dir: str | Path, out_path: str | Path, max_clips: int = 16, per_clip: int = 3,
                  tile: int = 128) -> Path:
    """Face crops of a few frames per clip, with the landmarks mapped into the crop by ``align_matrix``.

    Landmarks that land where the face is show at a glance that alignment and crops agree.
    """
    from PIL import Image, ImageDraw

    dataset = frames_dataset(shards_dir)
    if dataset is None:
        raise TalkbenchError(f"{shards_dir} has no frame shards to draw")
    tiles: list[tuple[str, Image.Image]] = []
    for fragment in dataset.get_fragments():
        pf = pq.ParquetFile(fragment.path)
        for rg in range(pf.num_row_groups):  # one row group per clip
            if len(tiles) >= max_clips * per_clip:
                break
            t = pf.read_row_group(rg, columns=["clip_id", "frame_idx", "face", "landmarks", "align_matrix"])
            faces = image_column(t.column("face"))
            landmarks = frame_array(t.column("landmarks"), "landmarks")
            matrices = frame_array(t.column("align_matrix"), "align_matrix")
            picks = [i for i in np.linspace(0, t.num_rows - 1, per_clip).round().astype(int) if faces[i]]
            for i in picks:
                img = Image.open(io.BytesIO(faces[i])).convert("RGB")
                scale = tile / img.width
                img = img.resize((tile, round(img.height * scale)))
                pts, mat = landmarks[i][:, :2].astype(np.float64), matrices[i].astype(np.float64)
                if np.isfinite(mat).all():
                    xy = pts @ mat[:, :2].T + mat[:, 2]
                    draw = ImageDraw.Draw(img)
                    for x, y in xy[np.isfinite(xy).all(axis=1)] * scale:
                        draw.point((float(x), float(y)), fill=(0, 255, 0))
                tiles.append((f"{t.column('clip_id')[i].as_py()} #{t.column('frame_idx')[i].as_py()}", img))
    if not tiles:
        raise TalkbenchError(f"{shards_dir}: no face crops to draw (was the encode stage run?)")
    cols = per_clip
    rows = -(-len(tiles) // cols)
    label_h = 14
    sheet = Image.new("RGB", (cols * tile, rows * (tile + label_h)), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for k, (label, img) in enumerate(tiles):
        x, y = (k % cols) * tile, (k // cols) * (tile + label_h)
        sheet.paste(img.crop((0, 0, tile, tile)), (x, y + label_h))
        draw.text((x + 2, y + 1), label[:22], fill=(255, 255, 255))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def inspect_from_args(args: argparse.Namespace) -> int:
    summary = summarize(args.shards)
    if args.sheet:
        summary["sheet"] = str(contact_sheet(args.shards, args.sheet))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    if args.sheet and not args.json:
        print(f"contact sheet: {summary['sheet']}")
    return 0
