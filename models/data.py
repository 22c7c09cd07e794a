"""Streaming loader over prepared shards: a torch IterableDataset where one row group = one clip.

Why this shape: shards are written one row group per clip, so a worker reads a clip with one
projected ``read_row_group`` call (only the columns the model needs) and decodes only the crops of the
samples it yields. Clips are spread over DataLoader workers *and* DDP ranks; a shuffle buffer mixes
samples across clips. The buffer shuffles *sample plans* (clip, start frame) rather than decoded
samples, so resuming can skip exactly the samples already seen without reading or decoding them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch.utils.data as tud
from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import TalkbenchError
from talkbench.schema import HOPS_PER_FRAME, MEL_BINS, MFCC_DIM, au_column, frame_array, image_column
from talkbench.shards import ShardReader


class DataConfig(StrictModel):
    shards: str = Field("", description="prepared shard folder (set by --shards)")
    split: str = "train"
    val_split: str = "val"
    statuses: list[str] = Field(default_factory=lambda: ["ok", "partial"], min_length=1)
    seq_len: int = Field(16, ge=1, description="consecutive frames per sample")
    stride: int | None = Field(None, ge=1, description="step between sample starts in a clip; default seq_len")
    audio_feature: Literal["mfcc", "logmel"] = "mfcc"
    window_hops: int = Field(35, ge=1, description="audio hops per frame window (35 = 350 ms)")
    shuffle_buffer: int = Field(256, ge=1)
    num_workers: int = Field(2, ge=0)
    seed: int = 0
    mask_interpolated: bool = Field(False, description="treat interpolated faces as missing")
    sync_min_shift: int = Field(5, ge=1, description="smallest audio shift (frames) of a negative sync pair")
    sync_max_shift: int = Field(15, ge=1)


@dataclass(frozen=True)
class DataSpec:
    """What one model needs from a clip; set by its objective."""

    image_size: int | None = None  # face crops (resized to this); None = no faces
    identity: bool = False  # the clip's identity frame
    mouth_size: tuple[int, int] | None = None  # (h, w) mouth crops
    windows: bool = False  # per-frame audio windows (C, window_hops)
    aus: tuple[str, ...] = ()  # AU intensity targets
    sync_frames: int | None = None  # sync pairs: mouth block + aligned and shifted audio blocks
    regions: bool = False  # MFTFG: upper-face landmarks, lower-face mask, masked GT, identity AUs/mask

    @property
    def n_coeffs_per_hop(self) -> int:
        return MFCC_DIM


@dataclass(frozen=True)
class Unit:
    """One clip = one row group of one frames file."""

    path: str
    row_group: int
    clip_id: str
    n_frames: int
    identity_frame: int


class ShardIndex:
    """The clips of a shard folder for training: which row group holds which clip, and each clip's split.

    Reading (manifest and schema check, row-group index) is :class:`talkbench.shards.ShardReader`'s job.
    """

    def __init__(self, root: str | Path):
        self.reader = ShardReader(root)
        self.root = self.reader.root
        self.manifest = self.reader.manifest
        self.manifest_hash = self.reader.manifest_hash
        cols = ["clip_id", "speaker_id", "split", "status", "identity_frame", "n_frames"]
        self.clips = self.reader.clips(cols).to_pylist()
        self.frame_files = self.reader.frame_files
        if not self.frame_files:
            raise TalkbenchError(f"{self.root}/frames holds no .parquet files")
        self._locations = self.reader.row_groups()

    def check_frame_columns(self, columns: list[str]) -> None:
        self.reader.check_frame_columns(columns)

    def units(self, split: str, statuses: list[str]) -> list[Unit]:
        units = []
        for c in self.clips:
            if c["split"] != split or c["status"] not in statuses or c["clip_id"] not in self._locations:
                continue
            path, rg, rows = self._locations[c["clip_id"]]
            ident = c["identity_frame"] if c["identity_frame"] is not None else 0
            units.append(Unit(path, rg, c["clip_id"], rows, int(ident)))
        return sorted(units, key=lambda u: (u.path, u.row_group))

    def check_speaker_disjoint(self, a: str, b: str) -> None:
        """Held-out metrics mean nothing if a speaker is in both splits."""
        known = [c for c in self.clips if c["speaker_id"] and c["speaker_id"] != "unknown"]  # adapters' placeholder
        spk = {s: {c["speaker_id"] for c in known if c["split"] == s} for s in (a, b)}
        both = spk[a] & spk[b]
        if both:
            raise TalkbenchError(f"speakers {sorted(both)[:5]} are in both the {a!r} and {b!r} splits")


def frame_columns_for(spec: DataSpec, cfg: DataConfig) -> list[str]:
    cols = ["face_found", "face_interpolated"]
    if spec.image_size is not None or spec.identity:
        cols.append("face")
    if spec.mouth_size is not None:
        cols.append("mouth")
    if spec.windows or spec.sync_frames:
        cols.append(cfg.audio_feature)
    if spec.regions:
        cols += ["landmarks", "align_matrix"]
    cols += [au_column(a) for a in spec.aus]
    return cols


def _decoder():
    """cv2.imdecode when OpenCV is installed (fastest), else PIL; both read PNG and JPEG."""
    try:
        import cv2

        cv2.setNumThreads(1)

        def decode(data: bytes) -> np.ndarray:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise TalkbenchError("a face crop in the shards is not a decodable image")
            return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

        def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
            return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)

    except ImportError:
        import io

        from PIL import Image

        def decode(data: bytes) -> np.ndarray:
            return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

        def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
            return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))

    return decode, resize


class _ClipData:
    """The projected columns of one clip, decoded lazily (crops only when a sample needs them)."""

    def __init__(self, table: pa.Table, identity_frame: int, spec: DataSpec, cfg: DataConfig, decode, resize):
        self.spec, self.cfg, self._decode, self._resize = spec, cfg, decode, resize
        self.n = table.num_rows
        self.identity_frame = min(identity_frame, self.n - 1)
        found = table.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
        interp = table.column("face_interpolated").to_numpy(zero_copy_only=False).astype(bool)
        self.mask = found & ~interp if cfg.mask_interpolated else found | interp
        self.faces = image_column(table.column("face")) if "face" in table.column_names else None
        self.mouths = image_column(table.column("mouth")) if "mouth" in table.column_names else None
        self.audio = None
        if cfg.audio_feature in table.column_names:
            width = HOPS_PER_FRAME * (MFCC_DIM if cfg.audio_feature == "mfcc" else MEL_BINS)
            try:
                self.audio = frame_array(table.column(cfg.audio_feature), cfg.audio_feature).reshape(self.n, width)
            except ValueError:
                raise TalkbenchError(f"column {cfg.audio_feature!r} has null rows; cannot build audio windows") from None
        self.aus = None
        if spec.aus:
            self.aus = np.stack(
                [table.column(au_column(a)).to_numpy(zero_copy_only=False) for a in spec.aus], axis=1
            ).astype(np.float32)
        self._windows: np.ndarray | None = None
        self._points: np.ndarray | None = None
        self.landmarks = self.align = None
        if spec.regions:
            # flat rows (T, 1434) and (T, 6), whichever schema stored them (frame_array reads both)
            self.landmarks = frame_array(table.column("landmarks"), "landmarks").reshape(self.n, -1) \
                if table.column("landmarks").null_count == 0 else None
            self.align = frame_array(table.column("align_matrix"), "align_matrix").reshape(self.n, -1) \
                if table.column("align_matrix").null_count == 0 else None

    def windows(self) -> np.ndarray:
        if self._windows is None:
            from talkbench.pipelines.audio import mfcc_windows

            self._windows = mfcc_windows(self.audio, n_hops=self.cfg.window_hops)  # MFCC or log-mel rows
        return self._windows

    def points68(self) -> np.ndarray:
        """(T, 68, 2) landmarks in the model's crop pixels; the template layout where none are stored."""
        if self._points is None:
            from talkbench.models.face_regions import has_landmarks, landmarks68, template68

            size = self.spec.image_size
            native = next((self._decode(f).shape[0] for f in self.faces if f is not None), size)
            pts = np.repeat(template68(size)[None], self.n, axis=0)
            if self.landmarks is not None and self.align is not None:
                ok = has_landmarks(self.landmarks) & np.isfinite(self.align).all(axis=1)
                if ok.any():
                    pts[ok] = landmarks68(self.landmarks[ok], self.align[ok], size / native)
            self._points = pts
        return self._points

    def image(self, blobs: list, i: int, h: int, w: int) -> np.ndarray:
        data = blobs[i]
        if data is None:  # no crop stored for this frame: black, and masked out
            return np.zeros((3, h, w), np.uint8)
        img = self._decode(data)
        if img.shape[0] != h or img.shape[1] != w:
            img = self._resize(img, h, w)
        return img.transpose(2, 0, 1)

    def sample(self, start: int, length: int, neg_start: int | None) -> dict[str, np.ndarray]:
        spec, end = self.spec, start + length
        out: dict[str, np.ndarray] = {"mask": self.mask[start:end].copy()}
        if spec.image_size is not None:
            s = spec.image_size
            out["face"] = np.stack([self.image(self.faces, i, s, s) for i in range(start, end)])
        if spec.identity:
            out["identity"] = self.image(self.faces, self.identity_frame, spec.image_size, spec.image_size)
        if spec.regions:
            from talkbench.models.face_regions import masked_frames, polygon_mask, upper_face

            s, pts = spec.image_size, self.points68()
            out["landmarks"] = upper_face(pts[start:end], s)
            out["lower"] = polygon_mask(pts[start:end], s)[:, None]
            out["masked"] = masked_frames(out["face"], pts[start:end])
            ident = pts[self.identity_frame : self.identity_frame + 1]
            out["identity_lower"] = polygon_mask(ident, s)
            if self.aus is not None:
                out["identity_aus"] = np.nan_to_num(self.aus[self.identity_frame], nan=0.0)
        if spec.mouth_size is not None:
            h, w = spec.mouth_size
            out["mouth"] = np.stack([self.image(self.mouths, i, h, w) for i in range(start, end)])
        if spec.windows:
            out["windows"] = self.windows()[start:end]
        if spec.sync_frames:
            from talkbench.pipelines.audio import block_window

            out["audio"] = block_window(self.audio, start, length)
            out["audio_neg"] = block_window(self.audio, neg_start, length)
        if self.aus is not None:
            aus = self.aus[start:end]
            valid = np.isfinite(aus) & out["mask"][:, None]
            out["aus"] = np.where(valid, aus, 0.0).astype(np.float32)
            out["au_mask"] = valid
        return out


class ShardDataset(tud.IterableDataset):
    """Iterable of sample dicts (numpy); wrap with :func:`make_loader`. ``repeat`` = endless epochs."""

    def __init__(self, index: ShardIndex, units: list[Unit], spec: DataSpec, cfg: DataConfig, *,
                 shuffle: bool, repeat: bool, rank: int = 0, world_size: int = 1,
                 batch_size: int = 1, skip_batches: int = 0):
        if not units:
            raise TalkbenchError(f"{index.root}: no usable clips in split {cfg.split!r} (statuses {cfg.statuses})")
        self.index, self.units, self.spec, self.cfg = index, units, spec, cfg
        self.shuffle, self.repeat = shuffle, repeat
        self.rank, self.world_size = rank, world_size
        self.batch_size, self.skip_batches = batch_size, skip_batches
        self.columns = frame_columns_for(spec, cfg)
        index.check_frame_columns(self.columns)
        length = spec.sync_frames or cfg.seq_len
        if spec.sync_frames and cfg.sync_min_shift > cfg.sync_max_shift:
            raise TalkbenchError("data.sync_min_shift must be <= data.sync_max_shift")
        self.length = length
        if all(u.n_frames < length for u in units):
            raise TalkbenchError(f"every clip is shorter than the sample length ({length} frames)")

    # -- planning: pure index arithmetic, no data read ------------------------------------------
    def _plan(self, k: int, unit: Unit, epoch: int) -> list[tuple[int, int, int | None]]:
        stride = self.cfg.stride or self.length
        starts = list(range(0, unit.n_frames - self.length + 1, stride))
        if not self.spec.sync_frames:
            return [(k, s, None) for s in starts]
        rng = np.random.default_rng([self.cfg.seed, epoch, k, 7])
        plan = []
        for s in starts:  # a negative: the same clip's audio shifted by min..max frames either way
            shifts = [d for d in range(-self.cfg.sync_max_shift, self.cfg.sync_max_shift + 1)
                      if abs(d) >= self.cfg.sync_min_shift and 0 <= s + d <= unit.n_frames - self.length]
            if shifts:
                plan.append((k, s, s + int(rng.choice(shifts))))
        return plan

    def _stream(self, shard: int, n_shards: int, remaining: dict[int, int]) -> Iterator[tuple[int, int, int | None]]:
        """Sample plans in yield order; ``remaining[k]`` counts unit k's plans not yet yielded."""
        buf_rng = np.random.default_rng([self.cfg.seed, shard, 11])
        buffer: list[tuple[int, int, int | None]] = []
        size = self.cfg.shuffle_buffer if self.shuffle else 1
        for epoch in itertools.count() if self.repeat else [0]:
            order = np.arange(len(self.units))
            if self.shuffle:
                order = np.random.default_rng([self.cfg.seed, epoch, 3]).permutation(order)
            for k in order[shard::n_shards]:
                plan = self._plan(int(k), self.units[int(k)], epoch)
                remaining[int(k)] = remaining.get(int(k), 0) + len(plan)
                for entry in plan:
                    buffer.append(entry)
                    if len(buffer) >= size:
                        yield buffer.pop(int(buf_rng.integers(len(buffer))) if self.shuffle else 0)
        while buffer:
            yield buffer.pop(int(buf_rng.integers(len(buffer))) if self.shuffle else 0)

    # -- iteration -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        info = tud.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        n_shards = self.world_size * nw
        if self.repeat and len(self.units) < n_shards:
            raise TalkbenchError(f"{len(self.units)} clips cannot feed {self.world_size} rank(s) x {nw} "
                                 "loader worker(s); lower data.num_workers or add clips")
        # The DataLoader takes batches round-robin from worker 0, 1, ...: logical stream w makes global
        # batches w, w + nw, ... After skipping b batches the next one is stream b % nw's, so worker 0
        # must play that stream: rotate the worker -> stream mapping by b.
        wid = (wid + self.skip_batches) % nw
        skip = max(0, (self.skip_batches - wid + nw - 1) // nw) * self.batch_size
        decode, resize = _decoder()
        cache: dict[int, _ClipData] = {}
        files: dict[str, pq.ParquetFile] = {}
        remaining: dict[int, int] = {}
        for k, start, neg in self._stream(self.rank * nw + wid, n_shards, remaining):
            remaining[k] -= 1
            if skip:
                skip -= 1
            else:
                clip = cache.get(k)
                if clip is None:
                    unit = self.units[k]
                    if unit.path not in files:  # opening parses the footer: once per file, not per clip
                        files[unit.path] = pq.ParquetFile(unit.path)
                    table = files[unit.path].read_row_group(unit.row_group, columns=self.columns)
                    clip = cache[k] = _ClipData(table, unit.identity_frame, self.spec, self.cfg, decode, resize)
                sample = clip.sample(start, self.length, neg)
                sample["clip"], sample["start"] = np.int64(k), np.int64(start)  # provenance, for tests and grids
                yield sample
            if remaining[k] == 0:  # no sample of this clip is left in the buffer: free its columns
                cache.pop(k, None)


def make_dataset(index: ShardIndex, spec: DataSpec, cfg: DataConfig, *, split: str, train: bool,
                 rank: int = 0, world_size: int = 1, batch_size: int = 1, skip_batches: int = 0):
    """A torch IterableDataset over ``split``: endless and shuffled for training, one ordered pass otherwise."""
    units = index.units(split, cfg.statuses)
    return ShardDataset(index, units, spec, cfg, shuffle=train, repeat=train, rank=rank, world_size=world_size,
                     batch_size=batch_size, skip_batches=skip_batches)


def make_loader(dataset: ShardDataset, batch_size: int, num_workers: int, pin_memory: bool = False,
                seed: int = 0) -> tud.DataLoader:
    """A DataLoader with its own seed generator: starting an iterator must not draw from the global torch
    RNG, or a resumed run's dropout would differ from an uninterrupted one."""
    import torch

    return tud.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                          persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers else None,
                          generator=torch.Generator().manual_seed(seed))
