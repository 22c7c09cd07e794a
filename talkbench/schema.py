"""The output contract of ``talkbench prepare``: what training and the benchmark read.

Bump ``SCHEMA_VERSION`` (major for removed/renamed columns, minor for added ones) whenever a column
changes; readers check the major version in ``manifest.json``.

Layout of an output folder::

    OUTPUT/clips.parquet          one row per input clip (ok, partial or failed)
    OUTPUT/frames/*.parquet       one row per 25 fps frame, one row group per clip
    OUTPUT/manifest.json          schema version, resolved config + hash, package versions, counts
    OUTPUT/_state/                per-shard completion records used to resume (internal)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from talkbench.facemesh import N_LANDMARKS  # MediaPipe face mesh with iris refinement

SCHEMA_VERSION = "2.0"  # 1.1: head, head_matrix (seed 001); 1.2: source_path_raw (hardening); 2.0: shaped
#: arrays, image structs, dataset card (newcomer). Readers still accept 1.x, which stored the arrays flat and
#: images as plain bytes (the helpers below read both); ``talkbench migrate`` rewrites a 1.x folder as 2.0
READABLE_MAJORS = ("1", "2")

#: The speech-related AUs of the method (GUIDE §1) and the extra mouth/eye AUs we also estimate.
SPEECH_AUS: tuple[str, ...] = ("AU10", "AU14", "AU20", "AU25", "AU26")
EXTRA_AUS: tuple[str, ...] = ("AU12", "AU15", "AU17", "AU23", "AU45")
ALL_AUS: tuple[str, ...] = SPEECH_AUS + EXTRA_AUS

MFCC_DIM = 12  # c0 dropped (GUIDE §1)
MEL_BINS = 80
HOPS_PER_FRAME = 4  # 10 ms audio hops per 40 ms video frame at 25 fps
FPS = 25
SAMPLE_RATE = 16_000

#: Every ``error_kind`` a clip row may carry, with what it means. Failed clips always have one;
#: partial clips carry ``face_gaps``.
ERROR_KINDS: dict[str, str] = {
    "file_missing": "the source file does not exist (or is a dangling link)",
    "not_a_file": "the path is a directory, FIFO, device or socket, not a regular file (never opened)",
    "permission_denied": "the source file cannot be read with this user's rights",
    "empty_file": "the source file has zero bytes",
    "not_video": "the file is not a container PyAV can open, or it has no video stream",
    "truncated": "decoding stopped early: the file is cut or corrupt",
    "no_audio": "the file has no audio stream",
    "too_short": "shorter than the configured minimum duration",
    "bad_frame_size": "frame size is zero, odd beyond repair, or too small for a face",
    "too_long": "longer than decode.max_duration_s (declared or found while decoding; not decoded further)",
    "too_large": "output frames x width x height above decode.max_pixels (refused before decoding)",
    "no_face": "no face was found on any frame",
    "face_gaps": "some frames have no face (longer than the interpolation limit); the clip is partial",
    "au_backend": "the AU backend failed on this clip",
    "internal": "an unexpected exception; the message has the traceback's last line",
}

CLIP_FIELDS: list[pa.Field] = [
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("dataset", pa.string()),
    pa.field("speaker_id", pa.string()),
    pa.field("split", pa.string()),
    pa.field("source_path", pa.string()),  # valid UTF-8: bytes that are not are shown escaped (%XX)
    pa.field("source_path_raw", pa.binary()),  # the path's original bytes, only when they are not UTF-8
    pa.field("status", pa.string()),  # ok | partial | failed
    pa.field("error_kind", pa.string()),
    pa.field("error", pa.string()),
    pa.field("transcript", pa.string()),
    pa.field("words_json", pa.string()),  # [[start_s, end_s, word], ...] when alignments exist
    pa.field("n_frames", pa.int32()),
    pa.field("fps", pa.float32()),
    pa.field("sample_rate", pa.int32()),
    pa.field("duration_s", pa.float32()),
    pa.field("source_fps", pa.float32()),
    pa.field("source_duration_s", pa.float32()),
    pa.field("source_width", pa.int32()),
    pa.field("source_height", pa.int32()),
    pa.field("rotation", pa.int32()),
    pa.field("av_diff_s", pa.float32()),  # audio duration - video duration, before trimming
    pa.field("n_faces_max", pa.int32()),
    pa.field("face_found_ratio", pa.float32()),
    pa.field("n_interpolated", pa.int32()),
    pa.field("face_size_mean", pa.float32()),
    pa.field("det_conf_mean", pa.float32()),
    pa.field("blur_mean", pa.float32()),
    pa.field("identity_frame", pa.int32()),  # first usable frame: the identity image of GUIDE §1
    pa.field("audio_pcm16", pa.binary()),  # raw 16 kHz mono audio, little-endian int16
    pa.field("au_backend", pa.string()),
    pa.field("shard", pa.string()),
    pa.field("elapsed_s", pa.float32()),
]
CLIPS_SCHEMA = pa.schema(CLIP_FIELDS, metadata={"talkbench_schema": SCHEMA_VERSION})

POSE_COLUMNS = ("yaw", "pitch", "roll", "tx", "ty", "tz")


def au_column(au: str) -> str:
    return f"{au}_r"


def fixed_shape(rows: int, cols: int) -> pa.DataType:
    """A (rows, cols) float32 array per row, nested fixed-size lists: ``datasets`` reads it as ``Array2D``."""
    return pa.list_(pa.list_(pa.float32(), cols), rows)


#: an encoded image the way Hugging Face ``datasets`` stores its ``Image`` feature
IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
#: per-frame array columns and their shapes (schema 1.x stored them flat, row-major)
FRAME_SHAPES: dict[str, tuple[int, int]] = {
    "landmarks": (N_LANDMARKS, 3), "align_matrix": (2, 3),
    "mfcc": (HOPS_PER_FRAME, MFCC_DIM), "logmel": (HOPS_PER_FRAME, MEL_BINS), "head_matrix": (2, 3),
}
IMAGE_COLUMNS = ("face", "mouth", "head")


def frame_array(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """An array column -> float32 ``(n, *FRAME_SHAPES[name])``; reads schema 2 (nested) and 1 (flat)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    while pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        arr = arr.flatten()
    return arr.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, *FRAME_SHAPES[name])


def image_column(column: pa.ChunkedArray | pa.Array) -> list[bytes | None]:
    """An image column -> encoded bytes per row (schema 2 {bytes, path} structs; schema 1 plain bytes)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_struct(arr.type):
        data = arr.field("bytes").to_pylist()
        valid = arr.is_valid().to_pylist()
        return [d if ok else None for d, ok in zip(data, valid, strict=True)]
    return arr.to_pylist()


def image_bytes(value: bytes | dict | None) -> bytes | None:
    """An image cell as read by ``to_pylist()`` -> its encoded bytes (schema 2 {bytes, path}; schema 1 bytes)."""
    if isinstance(value, dict):
        return value.get("bytes")
    return value


FRAME_FIELDS: list[pa.Field] = [
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("frame_idx", pa.int32(), nullable=False),
    pa.field("timestamp_s", pa.float32()),
    pa.field("face_found", pa.bool_()),
    pa.field("face_interpolated", pa.bool_()),
    pa.field("n_faces", pa.int8()),
    # 478 x 3 float32 (x, y in source-frame pixels; z in the same scale as x)
    pa.field("landmarks", fixed_shape(N_LANDMARKS, 3)),
    # 2 x 3 similarity transform mapping source-frame pixels to the aligned face crop
    pa.field("align_matrix", fixed_shape(2, 3)),
    *[pa.field(c, pa.float32()) for c in POSE_COLUMNS],
    *[pa.field(au_column(a), pa.float32()) for a in ALL_AUS],
    pa.field("face", IMAGE_TYPE),  # encoded aligned face crop (PNG or JPEG) as {bytes, path}: an HF Image
    pa.field("mouth", IMAGE_TYPE),  # encoded mouth crop
    # encoded head crop: one fixed box per clip covering the face's motion, so pose stays visible (1.1)
    pa.field("head", IMAGE_TYPE),
    # 2 x 3 source pixels -> head crop (scale + shift; the same on every frame of a clip) (1.1)
    pa.field("head_matrix", fixed_shape(2, 3)),
    # the 4 MFCC hops (10 ms each) of this 40 ms frame, 4 x 12; a frame's 350 ms window
    # is the concatenation over neighbouring frames (see talkbench.pipelines.audio)
    pa.field("mfcc", fixed_shape(HOPS_PER_FRAME, MFCC_DIM)),
    pa.field("logmel", fixed_shape(HOPS_PER_FRAME, MEL_BINS)),  # 4 x 80
    pa.field("face_size", pa.float32()),  # inter-ocular distance in source pixels
    pa.field("det_conf", pa.float32()),
    pa.field("blur", pa.float32()),  # variance of the Laplacian of the face crop (higher = sharper)
]
FRAMES_SCHEMA = pa.schema(FRAME_FIELDS, metadata={"talkbench_schema": SCHEMA_VERSION})


def frame_columns() -> list[str]:
    return [f.name for f in FRAME_FIELDS]


# -- audio_pcm16: the one codec of the stored audio ------------------------------------------------
#: int16 full scale of the stored audio: float x in [-1, 1] is stored as round(x * PCM16_SCALE)
PCM16_SCALE = 32767.0


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] -> little-endian int16 (x 32767, clipped, rounded): the stored form."""
    return np.round(np.clip(audio, -1.0, 1.0) * PCM16_SCALE).astype("<i2")


def from_pcm16(data: bytes | np.ndarray) -> np.ndarray:
    """Stored ``audio_pcm16`` (bytes, or the int16 array :func:`to_pcm16` made) -> float32 audio; the
    inverse of :func:`to_pcm16` (/ 32767, so a stored full-scale sample reads back as exactly 1.0)."""
    pcm = np.frombuffer(data, dtype="<i2") if isinstance(data, bytes | bytearray | memoryview) else np.asarray(data)
    return pcm.astype(np.float32) / np.float32(PCM16_SCALE)
