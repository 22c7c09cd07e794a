"""Benchmark tasks: versioned, hashed manifests of test clips built from prepared shards.

A task (the lm-evaluation-harness idea) is a YAML file ``TASKS_DIR/<name>/v<N>.yaml`` that says, per
clip, which face is the reference (a clip's ``identity_frame``), which audio drives it (a clip's
``audio_pcm16`` in ``clips.parquet``) and where the ground truth is (the clip's ``source_path``, decoded
again at evaluation time so real and generated videos go through the same processing). Its hash covers
everything that can change a number, and is recorded with every result.

``make_task`` is idempotent: the same content under the same name keeps its version; changed content
becomes version N+1 (old versions stay loadable as ``name@N``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError

from talkbench.config import StrictModel, format_validation_error
from talkbench.errors import ConfigError, TalkbenchError
from talkbench.io import atomic_write, stable_hash
from talkbench.shards import ShardReader, check_columns

TASK_FORMAT = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Ranking metric when make-task is not told otherwise (a value key of a registered metric).
DEFAULT_PRIMARY = {"paired": "lmd", "unpaired": "av_xcorr_r0", "personalized": "lmd", "dubbing": "lmd"}
#: a personalised clip needs at least this many target frames after its fine-tuning frames
MIN_TARGET_FRAMES = 25
#: Clip statuses of clips.parquet a task takes: partial clips have frames without a face, which would
#: make the ground truth itself incomplete.
USABLE_STATUSES = ("ok",)


class TaskClip(StrictModel):
    """One test item. For paired tasks all three clip ids are the same clip."""

    clip_id: str
    reference_clip: str  # whose identity frame is the reference face
    reference_frame: int = Field(ge=0)
    reference_source: str  # that clip's source video
    audio_clip: str  # whose audio_pcm16 drives the generation
    ground_truth: str | None  # source video of the ground truth; None for unpaired tasks
    n_frames: int = Field(ge=1)  # frames to generate: the driving audio's length at the task fps
    #: personalised tasks: the clip's first N frames (and their audio) are the fine-tuning material
    #: handed to ``personalize(frames, audio)``; the frames from N on are the target to generate
    personalize_frames: int | None = Field(None, ge=1)
    #: CSIM's identity reference: a frame of ANOTHER clip of the same speaker, so repeating the handed-out
    #: reference image cannot score identity ~1 (None when the speaker has no other usable clip: CSIM then
    #: falls back to the handed-out image and counts it)
    identity_clip: str | None = None
    identity_frame: int | None = Field(None, ge=0)
    identity_source: str | None = None


class TaskManifest(StrictModel):
    format: int = TASK_FORMAT
    name: str
    version: int = Field(1, ge=1)
    kind: Literal["paired", "unpaired", "personalized", "dubbing"]
    #: the geometry submissions' frames come in (benchmark/geometry.py): "full" = the source video's frame
    #: size (cropped with the ground truth's own transforms), "aligned" = S x S crops in the task's
    #: alignment. None (tasks made before it existed) reads as "full".
    geometry: Literal["full", "aligned"] | None = None
    #: codec normalisation (benchmark/codec.py): every scored video, ground truth included, re-encoded with
    #: this named setting before scoring; None = scored as delivered
    codec: str | None = None
    split: str
    shards: str  # absolute path of the prepared shards folder
    shards_config_hash: str | None = None  # from the shards' manifest.json, when present
    primary_metric: str
    fps: float = 25.0
    sample_rate: int = 16_000
    #: the preparation pipeline's face settings (landmarks, align, pose, au sections), copied from the
    #: shards' manifest.json so generated videos are processed exactly like the data was
    preprocessing: dict[str, dict[str, Any]] = Field(default_factory=dict)
    selection: dict[str, Any] = Field(default_factory=dict)  # how the clips were chosen (for the record)
    clips: list[TaskClip]
    created_utc: str = ""
    hash: str = ""

    def content_hash(self) -> str:
        """sha256 of everything but name, version, creation time and the hash itself."""
        data = self.model_dump(mode="json", exclude={"name", "version", "created_utc", "hash"})
        for key in ("geometry", "codec"):  # tasks made before these options existed keep their hashes
            if data.get(key) is None:
                data.pop(key, None)
        for clip in data["clips"]:  # tasks made before these optional fields existed keep their hashes
            for key in ("personalize_frames", "identity_clip", "identity_frame", "identity_source"):
                if clip.get(key) is None:
                    clip.pop(key, None)
        return stable_hash(data)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def paired(self) -> bool:
        """Whether there is a ground truth (paired and personalised tasks)."""
        return self.kind != "unpaired"


def tasks_dir(path: str | Path | None = None) -> Path:
    """``--tasks-dir``, else ``$TALKBENCH_TASKS_DIR``, else ``./tasks`` (tasks point at local shards)."""
    return Path(path or os.environ.get("TALKBENCH_TASKS_DIR") or "tasks")


def _preprocessing_from(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The face-processing sections of the shards' resolved config, else the pipeline defaults."""
    from talkbench.pipelines.config import PREPROCESSING_SECTIONS, PipelineConfig

    resolved = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    cfg = PipelineConfig()
    out = {}
    for section in PREPROCESSING_SECTIONS:
        data = resolved.get(section)
        model = getattr(cfg, section)
        try:
            out[section] = (type(model).model_validate(data) if data else model).model_dump(mode="json")
        except ValidationError as e:
            raise TalkbenchError(f"the shards' manifest.json {section!r} settings do not fit this talkbench "
                                 f"version ({format_validation_error(e, section)}); re-run `talkbench prepare`"
                                 ) from None
    return out


def _read_clips(reader: ShardReader) -> Any:
    cols = ["clip_id", "speaker_id", "split", "status", "source_path", "identity_frame", "n_frames", "fps",
            "sample_rate"]
    check_columns(reader.clips_path, [*cols, "audio_pcm16"])
    return reader.clips(cols).to_pandas()


def resolve_source(path: str, input_root: str | None) -> str:
    """An absolute path to a clip's source video.

    clips.parquet may hold paths relative to where ``prepare`` ran; they are tried relative to the
    current folder, then as a tail of the shards' recorded input folder (``manifest.json`` "input").
    """
    p = Path(path)
    candidates = [p]
    if input_root and not p.is_absolute():
        candidates += [Path(input_root) / Path(*p.parts[k:]) for k in range(len(p.parts))]
    for c in candidates:
        if c.is_file():
            return str(c.resolve())
    raise TalkbenchError(f"source video {path!r} not found (also tried under the shards' input folder "
                         f"{input_root!r}); the task needs it for the ground truth and reference frames")


def _pair_unpaired(clips: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Reference clip i is driven by the next clip in order spoken by ANOTHER speaker (if any)."""
    if len(clips) < 2:
        raise TalkbenchError("an unpaired task needs at least 2 clips (audio comes from another clip)")
    pairs = []
    n = len(clips)
    for i, ref in enumerate(clips):
        others = [clips[(i + j) % n] for j in range(1, n)]
        other_speaker = [c for c in others if c["speaker_id"] != ref["speaker_id"]]
        pairs.append((ref, (other_speaker or others)[0]))
    return pairs


def build_task(shards: str | Path, name: str, split: str = "test", kind: str = "paired",
               max_clips: int | None = None, primary_metric: str | None = None,
               personalize_frames: int | None = None, geometry: str | None = None,
               codec: str | None = None) -> TaskManifest:
    """Select the usable clips of ``split`` (sorted by clip id, first ``max_clips``) into a manifest.

    ``kind="personalized"``: per clip with at least ``personalize_frames`` + 25 frames, the first
    ``personalize_frames`` are the fine-tuning material and the rest the target (seed 001)."""
    if not NAME_RE.match(name):
        raise ConfigError(f"task name {name!r} must be letters, digits, '_', '-', '.' (no '/' or spaces)")
    if codec is not None:
        from talkbench.benchmark.codec import get_codec

        get_codec(codec)  # an unknown name is a clear error before any work
    if kind not in DEFAULT_PRIMARY:
        raise ConfigError(f"task kind {kind!r}: allowed: {', '.join(DEFAULT_PRIMARY)}")
    if (kind == "personalized") != (personalize_frames is not None):
        raise ConfigError("--personalize-frames N goes with --kind personalized (and only with it)")
    if personalize_frames is not None and personalize_frames < 1:
        raise ConfigError(f"--personalize-frames {personalize_frames}: must be >= 1")
    if max_clips is not None and max_clips < 1:
        raise ConfigError(f"--max-clips {max_clips}: must be >= 1")
    shards = Path(shards).resolve()
    reader = ShardReader(shards)
    shards_manifest = reader.manifest
    df = _read_clips(reader)
    in_split = df[df["split"] == split]
    if in_split.empty:
        counts = ", ".join(f"{s} ({n} clips)" for s, n in df["split"].value_counts().sort_index().items())
        raise TalkbenchError(
            f"no clips in split {split!r} of {shards}; splits there: {counts or 'none'}. Fix: pick one of those "
            f"with --split, or re-run prepare (into a new --output) with a split that holds {split!r} clips: "
            f"-o split.{split}_speakers=[SPEAKER,...], or for a folder whose speakers are unknown "
            f"-o split.by=clip -o split.{split}_fraction=0.4 (prepare prints the split summary)")
    usable = in_split[in_split["status"].isin(USABLE_STATUSES) & in_split["identity_frame"].notna()]
    if usable.empty:
        raise TalkbenchError(f"split {split!r} of {shards} has no clip with status {USABLE_STATUSES}")
    usable = usable.sort_values("clip_id")
    too_short = 0
    if personalize_frames is not None:
        long_enough = usable["n_frames"] >= personalize_frames + MIN_TARGET_FRAMES
        too_short = int((~long_enough).sum())
        usable = usable[long_enough]
        if usable.empty:
            raise TalkbenchError(f"no clip of split {split!r} has {personalize_frames} + {MIN_TARGET_FRAMES} frames "
                                 "for a personalised task; lower --personalize-frames")
    n_usable = int(len(usable))
    if max_clips:
        usable = usable.head(max_clips)
    rows = usable.to_dict("records")
    fps = float(rows[0]["fps"] or 25.0)
    sample_rate = int(rows[0]["sample_rate"] or 16_000)

    input_root = shards_manifest.get("input")
    for r in rows:
        r["source_path"] = resolve_source(str(r["source_path"]), input_root)

    def ref_fields(r: dict[str, Any]) -> dict[str, Any]:
        return {"reference_clip": r["clip_id"], "reference_frame": int(r["identity_frame"]),
                "reference_source": r["source_path"]}

    clips = []
    if kind == "personalized":
        n_ft = int(personalize_frames)
        for r in rows:
            ref = ref_fields(r)
            ref["reference_frame"] = min(ref["reference_frame"], n_ft - 1)  # never a frame of the target part
            clips.append(TaskClip(clip_id=r["clip_id"], audio_clip=r["clip_id"], ground_truth=str(r["source_path"]),
                                  n_frames=int(r["n_frames"]) - n_ft, personalize_frames=n_ft, **ref))
    elif kind in ("paired", "dubbing"):  # dubbing: the same clips; the evaluator masks the lower face
        for r in rows:
            clips.append(TaskClip(clip_id=r["clip_id"], audio_clip=r["clip_id"], ground_truth=str(r["source_path"]),
                                  n_frames=int(r["n_frames"]), **ref_fields(r)))
    else:
        for ref, drv in _pair_unpaired(rows):
            clips.append(TaskClip(clip_id=f"{ref['clip_id']}__by__{drv['clip_id']}", audio_clip=drv["clip_id"],
                                  ground_truth=None, n_frames=int(drv["n_frames"]), **ref_fields(ref)))
    n_identity = _choose_identity_references(clips, usable, input_root)
    task = TaskManifest(
        name=name, kind=kind, split=split, shards=str(shards), geometry=geometry, codec=codec,
        shards_config_hash=shards_manifest.get("config_hash"),
        primary_metric=primary_metric or DEFAULT_PRIMARY[kind], fps=fps, sample_rate=sample_rate,
        preprocessing=_preprocessing_from(shards_manifest),
        selection={"split": split, "statuses": list(USABLE_STATUSES), "order": "clip_id",
                   "max_clips": max_clips, "in_split": int(len(in_split)), "usable": n_usable,
                   "pairing": "next clip by another speaker" if kind == "unpaired" else "same clip",
                   "identity_reference": f"identity frame of another clip of the same speaker: {n_identity} of "
                                         f"{len(clips)} clips (the others: the handed-out reference image)",
                   **({"personalize_frames": personalize_frames, "too_short": too_short}
                      if kind == "personalized" else {}),
                   **({"dubbing_mask": _dubbing_mask_spec()} if kind == "dubbing" else {})},
        clips=clips,
    )
    return task


def _dubbing_mask_spec() -> dict[str, Any]:
    from talkbench.benchmark.dubbing import MASK_SPEC

    return dict(MASK_SPEC)


def _choose_identity_references(clips: list[TaskClip], usable: Any, input_root: str | None) -> int:
    """Give each clip CSIM's identity reference: the identity frame of the first other usable clip (by clip
    id) of the reference clip's speaker in the split. Returns how many clips got one."""
    by_id = usable.set_index("clip_id")
    found = 0
    for clip in clips:
        speaker = by_id.at[clip.reference_clip, "speaker_id"] if clip.reference_clip in by_id.index else None
        if speaker is None:
            continue
        others = by_id[(by_id["speaker_id"] == speaker)
                       & ~by_id.index.isin([clip.reference_clip, clip.audio_clip])].sort_index()
        if others.empty:
            continue
        other_id, other = others.index[0], others.iloc[0]
        clip.identity_clip, clip.identity_frame = str(other_id), int(other["identity_frame"])
        clip.identity_source = resolve_source(str(other["source_path"]), input_root)
        found += 1
    return found


def save_task(task: TaskManifest, root: str | Path | None = None) -> tuple[TaskManifest, Path, bool]:
    """Write the task as a new version unless the latest version has the same content.

    Returns (the stored manifest, its path, whether a new file was written).
    """
    folder = tasks_dir(root) / task.name
    digest = task.content_hash()
    versions = _versions(folder)
    if versions:
        latest = load_task(f"{task.name}@{versions[-1]}", root)
        if latest.hash == digest:
            return latest, folder / f"v{versions[-1]}.yaml", False
    version = (versions[-1] + 1) if versions else 1
    stored = task.model_copy(update={"version": version, "hash": digest,
                                     "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"v{version}.yaml"
    atomic_write(path, yaml.safe_dump(stored.model_dump(mode="json"), sort_keys=False))
    return stored, path, True


def _versions(folder: Path) -> list[int]:
    found = []
    for p in folder.glob("v*.yaml"):
        if p.stem[1:].isdigit():
            found.append(int(p.stem[1:]))
    return sorted(found)


def load_task(ref: str, root: str | Path | None = None) -> TaskManifest:
    """``name`` (latest version), ``name@N``, or a path to a task YAML file."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _load_file(path)
    name, _, ver = ref.partition("@")
    folder = tasks_dir(root) / name
    versions = _versions(folder) if NAME_RE.match(name) else []
    if not versions:
        known = ", ".join(t.name for t in list_tasks(root)) or "none"
        raise TalkbenchError(f"unknown task {name!r} in {tasks_dir(root)}; known: {known} "
                             "(create one with `talkbench bench make-task`)")
    if ver:
        if not ver.lstrip("v").isdigit() or int(ver.lstrip("v")) not in versions:
            raise TalkbenchError(f"task {name!r} has no version {ver!r}; versions: {versions}")
        version = int(ver.lstrip("v"))
    else:
        version = versions[-1]
    return _load_file(folder / f"v{version}.yaml")


def _load_file(path: Path) -> TaskManifest:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        task = TaskManifest.model_validate(data)
    except yaml.YAMLError as e:
        raise TalkbenchError(f"{path}: not valid YAML: {e}") from None
    except ValidationError as e:
        raise TalkbenchError(format_validation_error(e, str(path))) from None
    if task.format != TASK_FORMAT:
        raise TalkbenchError(f"{path}: task format {task.format}, this talkbench reads {TASK_FORMAT}")
    if task.hash != task.content_hash():
        raise TalkbenchError(f"{path}: content does not match its hash (edited by hand?); "
                             "re-create it with `talkbench bench make-task`")
    return task


def list_tasks(root: str | Path | None = None) -> list[TaskManifest]:
    """The latest version of every task under the tasks folder."""
    base = tasks_dir(root)
    out = []
    if base.is_dir():
        for folder in sorted(p for p in base.iterdir() if p.is_dir()):
            versions = _versions(folder)
            if versions:
                out.append(_load_file(folder / f"v{versions[-1]}.yaml"))
    return out


@dataclass
class TaskItem:
    """One clip of a task with its driving audio loaded (float32 mono at the task sample rate)."""

    clip: TaskClip
    audio: np.ndarray  # the driving audio (personalised tasks: from the first target frame on)
    fps: float
    sample_rate: int
    personal_audio: np.ndarray | None = None  # personalised tasks: the fine-tuning frames' audio

    @property
    def clip_id(self) -> str:
        return self.clip.clip_id


def load_audio(task: TaskManifest) -> dict[str, np.ndarray]:
    """audio_clip id -> float32 audio, read from the shards' ``audio_pcm16`` column (only those rows)."""
    wanted = sorted({c.audio_clip for c in task.clips})
    if not (Path(task.shards) / "clips.parquet").is_file():
        raise TalkbenchError(f"task {task.ref}: shards moved or deleted: {Path(task.shards) / 'clips.parquet'} not found")
    out = ShardReader(task.shards).audio(wanted)
    missing = [c for c in wanted if c not in out]
    if missing:
        raise TalkbenchError(f"task {task.ref}: no audio_pcm16 in {task.shards} for clip(s) {missing[:5]}")
    return out


def iter_items(task: TaskManifest) -> Iterator[TaskItem]:
    audio = load_audio(task)
    for clip in task.clips:
        a = audio[clip.audio_clip]
        personal = None
        if clip.personalize_frames:
            cut = round(clip.personalize_frames * task.sample_rate / task.fps)
            a, personal = a[cut:], a[:cut]
        yield TaskItem(clip=clip, audio=a, fps=task.fps, sample_rate=task.sample_rate, personal_audio=personal)
