"""Face detection, tracking, alignment and head pose: the pure functions behind the face stages.

The pipeline stages (landmarks, align, pose, quality) call these, and so does the benchmark, so
generated and real videos go through *the same* detection and alignment (GUIDE §4). Everything here
works on plain arrays; the only state is the MediaPipe graph inside :class:`FaceMeshTracker`.

Conventions (all recorded in docstrings because downstream numbers depend on them):

* landmarks: (T, 478, 3) float32; x, y in source-frame pixels, z in the same pixel scale as x
  (MediaPipe's normalised z is relative to the image width), NaN where no face;
* ``face_found`` is True on detected *and* on interpolated frames; ``face_interpolated`` marks the
  latter; ``face_found`` is False only where no face remains after gap filling;
* ``align_matrix`` (T, 2, 3) maps source pixels to aligned-crop pixels; NaN where no face;
* pose (T, 6): yaw, pitch, roll in degrees, tx, ty, tz in cm (see :func:`estimate_pose`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

if TYPE_CHECKING:
    from talkbench.pipelines.stages.align import AlignConfig
    from talkbench.pipelines.stages.landmarks import LandmarksConfig
    from talkbench.pipelines.stages.pose import PoseConfig

N_LANDMARKS = 478

# MediaPipe face mesh indices. "Left"/"right" are the subject's: the subject's right eye is on the
# image's left in a non-mirrored frame.
RIGHT_EYE = (33, 133)  # outer, inner corner
LEFT_EYE = (263, 362)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
NOSE_TIP = 1
MOUTH_CORNERS = (61, 291)
MOUTH_POINTS = (61, 291, 0, 17, 13, 14)  # corners, outer upper/lower lip, inner upper/lower lip
RIGHT_IRIS_CENTER, LEFT_IRIS_CENTER = 468, 473
#: symmetric (subject-left, subject-right) pairs that define the head's left-right axis
SYMMETRIC_PAIRS = ((263, 33), (362, 133), (454, 234), (356, 127), (389, 162), (327, 98), (278, 48))
#: points that move little with speech, blinks or brows: nose, eye corners, temples, upper forehead
RIGID_POINTS = (
    1, 2, 4, 5, 6, 168, 197, 195, 98, 327, 48, 278, 129, 358,
    33, 133, 362, 263,
    127, 356, 234, 454, 162, 389, 21, 251,
    10, 151, 9, 108, 337, 67, 297, 109, 338,
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Detection and tracking


class FaceMeshTracker:
    """MediaPipe face mesh in tracking mode (478 points), plus the detector's per-face score.

    Builds the graph of ``mp.solutions.face_mesh.FaceMesh`` (mediapipe==0.10.21,
    refine_landmarks=True) with two changes, because the solutions API offers neither:

    * it also observes the ``face_detections`` stream, so a BlazeFace score is available;
    * with ``detect_while_tracking=False`` (default) the detector runs only while *no* face is
      tracked, instead of while fewer than ``max_faces`` are. Every face found then (up to
      ``max_faces``) is tracked until lost, so the main-face choice sees all of them, but a
      single-face clip costs what ``max_num_faces=1`` costs (stock behaviour with 4 faces runs the
      detector on every frame: ~1.6x slower here). A face that enters while another is tracked is
      not picked up until every track is lost; ``detect_while_tracking=True`` restores the stock
      behaviour.

    Frames whose long side exceeds ``detect_max_side`` are downscaled (INTER_AREA) before
    MediaPipe sees them; landmarks come back in source pixels. Call :meth:`reset` between
    unrelated videos so one clip's tracking state never changes the next clip's result.
    """

    def __init__(
        self,
        max_faces: int = 4,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        detect_max_side: int = 640,
        detect_while_tracking: bool = False,
    ) -> None:
        from mediapipe.framework import calculator_pb2
        from mediapipe.python.solution_base import SolutionBase
        from mediapipe.python.solutions import face_mesh

        self.detect_max_side = int(detect_max_side)
        graph = calculator_pb2.CalculatorGraphConfig()
        graph_path = Path(face_mesh.__file__).parents[2] / face_mesh._BINARYPB_FILE_PATH.removeprefix("mediapipe/")
        graph.ParseFromString(graph_path.read_bytes())
        gate = [n for n in graph.node if n.calculator == "NormalizedRectVectorHasMinSizeCalculator"]
        if len(gate) != 1 or list(gate[0].input_side_packet) != ["num_faces"]:
            raise RuntimeError(f"unexpected MediaPipe face mesh graph in {graph_path} (mediapipe==0.10.21 expected)")
        gate[0].input_side_packet[:] = ["tracked_faces_to_skip_detection"]
        graph.input_side_packet.append("TRACKED_FACES_TO_SKIP_DETECTION:tracked_faces_to_skip_detection")
        self._mesh = SolutionBase(
            graph_config=graph,
            side_inputs={
                "num_faces": max_faces,
                "tracked_faces_to_skip_detection": max_faces if detect_while_tracking else 1,
                "with_attention": True,
                "use_prev_landmarks": True,
            },
            calculator_params={
                "facedetectionshortrangecpu__facedetectionshortrange__facedetection__"
                "TensorsToDetectionsCalculator.min_score_thresh": min_detection_confidence,
                "facelandmarkcpu__ThresholdingCalculator.threshold": min_tracking_confidence,
            },
            outputs=["multi_face_landmarks", "face_detections"],
        )

    @classmethod
    def from_config(cls, cfg: LandmarksConfig) -> FaceMeshTracker:
        return cls(cfg.max_faces, cfg.min_detection_confidence, cfg.min_tracking_confidence,
                   cfg.detect_max_side, cfg.detect_while_tracking)

    def detect(self, rgb: np.ndarray) -> tuple[list[np.ndarray], list[tuple[float, float, float, float, float]]]:
        """One frame -> (faces as (478, 3) float32 in source pixels, detections as (x0, y0, x1, y1,
        score) in source pixels; empty on frames where the graph only tracked)."""
        from mediapipe.framework.formats import detection_pb2

        h, w = rgb.shape[:2]
        small = rgb
        if max(h, w) > self.detect_max_side:
            f = self.detect_max_side / max(h, w)
            small = cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        landmark_lists, detections = self._process(np.ascontiguousarray(small))
        scale = np.array([w, h, w], dtype=np.float32)
        faces = [_landmarks_array(data) * scale for data in landmark_lists]
        dets = []
        for data in detections:
            d = detection_pb2.Detection.FromString(data)
            b = d.location_data.relative_bounding_box
            dets.append((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h, d.score[0]))
        return faces, dets

    def _process(self, rgb: np.ndarray) -> tuple[list[bytes], list[bytes]]:
        """One frame through the graph -> the serialised landmark lists and detections.

        ``SolutionBase.process`` minus what it adds per frame: a new namedtuple class and Python
        proto objects for every output (~0.4 ms a frame, ~5% of the face mesh itself); the bytes
        are read with numpy instead (:func:`_landmarks_array`).
        """
        from mediapipe.python import packet_creator
        from mediapipe.python._framework_bindings import _packet_getter
        from mediapipe.python._framework_bindings.image_frame import ImageFormat

        mesh = self._mesh
        mesh._graph_outputs.clear()
        mesh._simulated_timestamp += 33333  # as SolutionBase.process: a 30 fps timeline
        packet = packet_creator.create_image(rgb, image_format=ImageFormat.SRGB).at(mesh._simulated_timestamp)
        mesh._graph.add_packet_to_input_stream(stream="image", packet=packet)
        mesh._graph.wait_until_idle()
        out = []
        for name in ("multi_face_landmarks", "face_detections"):
            p = mesh._graph_outputs.get(name)
            out.append([] if p is None or p.is_empty() else _packet_getter._get_serialized_proto_list(p))
        return out[0], out[1]

    def reset(self) -> None:
        """Forget every tracked face: the next frame runs the detector, as on a fresh graph.

        One blank frame does it, since the graph's only state between frames is the previous
        frame's face rectangles and every track is lost on a blank frame (the landmarks of the
        fixture clips come out bit-identical either way). Restarting the graph
        (``SolutionBase.reset``) reloads the models instead: 19 vs 4 ms, once per clip.
        """
        faces, _ = self.detect(_BLANK_FRAME)
        if faces:  # a face "tracked" on a blank frame: not seen, but then restart to be sure
            self._mesh.reset()

    def close(self) -> None:
        if self._mesh is not None and self._mesh._graph is not None:
            self._mesh.close()

    def __enter__(self) -> FaceMeshTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_BLANK_FRAME = np.zeros((64, 64, 3), dtype=np.uint8)

# A serialised NormalizedLandmark with exactly x, y, z set is 17 bytes: field tag 1 (0x0a), length 15,
# then tag 0x0d + x, tag 0x15 + y, tag 0x1d + z as little-endian float32.
_RECORD_TAGS = np.array([0x0A, 0x0F, 0x0D, 0x15, 0x1D], dtype=np.uint8)
_FLOAT_BYTES = [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]


def _landmarks_array(data: bytes) -> np.ndarray:
    """(N, 3) float32 normalised landmarks from a serialised NormalizedLandmarkList.

    Reads the bytes with numpy: 10x faster than proto attribute access per point (0.06 vs 0.7 ms
    per face), which matters next to MediaPipe's few ms per frame. Falls back to the proto when the
    records are not the plain x, y, z layout.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size % 17 == 0:
        rec = raw.reshape(-1, 17)
        if (rec[:, [0, 1, 2, 7, 12]] == _RECORD_TAGS).all():
            return rec[:, _FLOAT_BYTES].copy().view("<f4").astype(np.float32)
    from mediapipe.framework.formats import landmark_pb2

    lm = landmark_pb2.NormalizedLandmarkList.FromString(data)
    return np.array([(p.x, p.y, p.z) for p in lm.landmark], dtype=np.float32).reshape(-1, 3)


@dataclass
class LandmarkTrack:
    """The main face over a video, after gap filling."""

    landmarks: np.ndarray  # (T, 478, 3) float32, NaN where face_found is False
    face_found: np.ndarray  # (T,) bool, True on detected and interpolated frames
    face_interpolated: np.ndarray  # (T,) bool
    n_faces: np.ndarray  # (T,) int8, faces MediaPipe returned on the frame (before gap filling)
    det_conf: np.ndarray  # (T,) float32, see track_main_face
    n_long_gap_frames: int  # frames left without a face (gaps longer than max_gap_frames)


def _box(lm: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and diagonal of a face's 2-D landmark bounding box."""
    x, y = lm[:, 0], lm[:, 1]  # four 1-D reductions: 3x faster than min/max over axis 0 (per frame)
    x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), math.hypot(x1 - x0, y1 - y0)


def choose_main_face(faces: list[np.ndarray], frame_hw: tuple[int, int], previous: np.ndarray | None) -> int | None:
    """Index of the main face among ``faces``, or None.

    With a previous main face: the face whose centre is nearest to it if within one face diagonal,
    else None (the main face is not among them: identity is kept over time). Without one: the best
    of size x centrality, i.e. the bounding-box diagonal weighted from 1 at the frame centre down to
    0.5 at a corner.
    """
    if not faces:
        return None
    centres = [_box(f) for f in faces]
    if previous is not None:
        pc, pd = _box(previous)
        dist = [math.hypot(*(c - pc)) for c, _ in centres]
        best = int(np.argmin(dist))
        return best if dist[best] <= pd else None
    h, w = frame_hw
    mid, half_diag = np.array([w / 2, h / 2]), math.hypot(w, h) / 2
    scores = [d * (1 - 0.5 * min(1.0, float(np.hypot(*(c - mid))) / half_diag)) for c, d in centres]
    return int(np.argmax(scores))


def _match_detection(face: np.ndarray, dets: list[tuple[float, ...]]) -> float | None:
    """Score of the detection whose box centre is nearest to the face, if it lies inside the face."""
    c, _ = _box(face)
    lo, hi = face[:, :2].min(0), face[:, :2].max(0)
    best, best_d = None, math.inf
    for x0, y0, x1, y1, score in dets:
        dc = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        d = float(np.hypot(*(dc - c)))
        if np.all(dc >= lo) and np.all(dc <= hi) and d < best_d:
            best, best_d = float(score), d
    return best


def track_main_face(frames: np.ndarray, tracker: FaceMeshTracker,
                    max_gap_frames: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the tracker over ``frames`` (T, H, W, 3) RGB; keep the main face per frame.

    The main face keeps its identity: while it is missing, other faces are not taken for it, for up
    to ``max_gap_frames`` frames (then a new main face is chosen). When it is missing but other
    faces are still tracked, the tracker is reset and the frame detected again, because MediaPipe
    would not run its detector while any face is tracked.

    Returns landmarks (T, 478, 3) with NaN where no main face, n_faces (T,) and det_conf (T,).
    ``det_conf`` is the BlazeFace score of the detection that matches the main face on frames where
    the detector ran; on tracked-only frames the track's last score is carried forward (MediaPipe's
    per-frame tracking score is not exposed); NaN without a face.
    """
    t = len(frames)
    landmarks = np.full((t, N_LANDMARKS, 3), np.nan, dtype=np.float32)
    n_faces = np.zeros(t, dtype=np.int8)
    det_conf = np.full(t, np.nan, dtype=np.float32)
    previous, missed, last_conf = None, 0, math.nan
    hw = frames.shape[1:3]
    for i in range(t):
        faces, dets = tracker.detect(frames[i])
        k = choose_main_face(faces, hw, previous)
        if k is None and faces and previous is not None:
            tracker.reset()
            faces, dets = tracker.detect(frames[i])
            k = choose_main_face(faces, hw, previous)
        if k is None and previous is not None and missed >= max_gap_frames:
            previous = None  # gone for longer than a gap: let another face become the main one
            k = choose_main_face(faces, hw, None)
        n_faces[i] = len(faces)
        if k is None:
            missed, last_conf = missed + 1, math.nan
            continue
        conf = _match_detection(faces[k], dets) if dets else None
        last_conf = conf if conf is not None else last_conf
        landmarks[i] = faces[k]
        previous = faces[k]
        det_conf[i] = last_conf
        missed = 0
    return landmarks, n_faces, det_conf


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``mask`` is True."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def fill_gaps(landmarks: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fill runs of at most ``max_gap`` missing frames: linear interpolation inside the clip,
    the nearest detected frame at its start or end. Longer runs stay NaN.

    Returns (landmarks, face_found, face_interpolated).
    """
    landmarks = landmarks.copy()
    missing = np.isnan(landmarks[:, 0, 0])
    interpolated = np.zeros(len(landmarks), dtype=bool)
    if missing.all():
        return landmarks, ~missing, interpolated
    for start, stop in true_runs(missing):
        if stop - start > max_gap:
            continue
        if start == 0:
            landmarks[start:stop] = landmarks[stop]
        elif stop == len(landmarks):
            landmarks[start:stop] = landmarks[start - 1]
        else:
            a, b = landmarks[start - 1], landmarks[stop]
            w = (np.arange(start, stop) - (start - 1)) / (stop - (start - 1))
            landmarks[start:stop] = a + w[:, None, None].astype(np.float32) * (b - a)
        interpolated[start:stop] = True
    return landmarks, ~np.isnan(landmarks[:, 0, 0]), interpolated


def detect_landmarks(frames: np.ndarray, tracker: FaceMeshTracker, max_gap_frames: int) -> LandmarkTrack:
    """Main-face landmarks over a video with short gaps filled (see :func:`fill_gaps`)."""
    _check_frames(frames)
    tracker.reset()
    raw, n_faces, det_conf = track_main_face(frames, tracker, max_gap_frames)
    landmarks, found, interp = fill_gaps(raw, max_gap_frames)
    return LandmarkTrack(landmarks, found, interp, n_faces, det_conf, int((~found).sum()))


def _check_frames(frames: np.ndarray) -> None:
    if not isinstance(frames, np.ndarray) or frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        got = f"{frames.shape} {frames.dtype}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 RGB array, got {got}")
    if len(frames) == 0:
        raise ValueError("frames is empty")


# ----------------------------------------------------------------------------------------------
# Similarity transforms


def umeyama(src: np.ndarray, dst: np.ndarray, scale: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` (Umeyama 1991), batched over frames.

    src (N, d), dst (T, N, d) -> s (T,), R (T, d, d), t (T, d). Hand-written rather than
    skimage's per-call estimator because one batched SVD does a whole clip at once.
    """
    mu_s, mu_d = src.mean(0), dst.mean(1)
    xs, xd = src - mu_s, dst - mu_d[:, None]
    cov = np.swapaxes(xd, 1, 2) @ xs / len(src)  # (T, d, d); matmul, not einsum: 10x faster here
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones_like(sig)
    d[:, -1] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    rot = u @ (d[:, :, None] * vt)
    s = (sig * d).sum(1) / (xs**2).sum(1).mean() if scale else np.ones(len(dst))
    t = mu_d - s[:, None] * np.einsum("tij,j->ti", rot, mu_s)
    return s, rot, t


def smooth_over_time(x: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 that ignores invalid frames (normalised convolution), so
    frames without a face neither contribute nor get filled. ``sigma`` is in frames."""
    if sigma <= 0:
        return x.copy()
    w = valid.astype(np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    num = gaussian_filter1d(np.where(w > 0, x, 0.0).astype(np.float64), sigma, axis=0, mode="nearest")
    den = gaussian_filter1d(w, sigma, axis=0, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out.astype(x.dtype)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (T, N, 2|3) points with (T, 2, 3) matrices; z is multiplied by the similarity scale."""
    xy = pts[..., :2] @ np.swapaxes(m[:, :, :2], 1, 2) + m[:, None, :, 2]
    if pts.shape[-1] == 2:
        return xy
    s = np.sqrt(np.abs(m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]))  # NaN-quiet determinant
    return np.concatenate([xy, pts[..., 2:] * s[:, None, None]], axis=-1)


# ----------------------------------------------------------------------------------------------
# Alignment


def template_points(cfg: AlignConfig) -> np.ndarray:
    """The (3, 2) template for [right-eye centre, left-eye centre, nose tip] in crop pixels."""
    s, e = cfg.crop_size, cfg.template_eye_distance
    return np.array([[0.5 - e / 2, cfg.template_eye_y], [0.5 + e / 2, cfg.template_eye_y],
                     [0.5, cfg.template_nose_y]], dtype=np.float64) * s


def _anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """(T, 3, 2): eye centres (mean of the two corners) and the nose tip."""
    right = landmarks[:, list(RIGHT_EYE), :2].mean(1)
    left = landmarks[:, list(LEFT_EYE), :2].mean(1)
    return np.stack([right, left, landmarks[:, NOSE_TIP, :2]], axis=1)


def alignment_matrices(landmarks: np.ndarray, valid: np.ndarray, cfg: AlignConfig, fps: float) -> np.ndarray:
    """(T, 2, 3) source->crop similarity from eye and nose points, smoothed over time; NaN where
    ``valid`` is False. Smoothing acts on the anchor points only (``cfg.smoothing_sigma_s``)."""
    anchors = smooth_over_time(_anchor_points(landmarks).astype(np.float64), valid, cfg.smoothing_sigma_s * fps)
    m = np.full((len(landmarks), 2, 3), np.nan)
    if valid.any():
        s, rot, t = umeyama(template_points(cfg), anchors[valid])
        # invert dst = s R tpl + t  ->  tpl = R^T (dst - t) / s
        inv = np.transpose(rot, (0, 2, 1)) / s[:, None, None]
        m[valid] = np.concatenate([inv, -np.einsum("tij,tj->ti", inv, t)[:, :, None]], axis=2)
    return m


def mouth_matrices(face_m: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, cfg: AlignConfig,
                   fps: float) -> np.ndarray:
    """(T, 2, 3) source->mouth-crop: a box of ``cfg.mouth_box`` x crop width around the (smoothed)
    mouth centre in the aligned face, scaled to the mouth crop size; composed with the face
    matrix so the source is resampled once."""
    mh, mw = cfg.mouth_shape
    box_w = cfg.mouth_box * cfg.crop_size
    box_h = box_w * mh / mw
    mouth = apply_affine(np.nan_to_num(face_m), landmarks[:, list(MOUTH_POINTS), :2].astype(np.float64)).mean(1)
    centre = smooth_over_time(mouth, valid, cfg.smoothing_sigma_s * fps)
    k = mw / box_w
    out = np.full_like(face_m, np.nan)
    out[:, :, :2] = face_m[:, :, :2] * k
    out[:, :, 2] = (face_m[:, :, 2] - centre + np.array([box_w / 2, box_h / 2])) * k
    return out


def warp_crops(frames: np.ndarray, matrices: np.ndarray, size_hw: tuple[int, int], antialias: bool = True) -> np.ndarray:
    """Warp each frame with its matrix to (T, h, w, 3) uint8 (bilinear); zeros where the matrix is NaN.

    Anti-aliasing is mip-mapping: bilinear sampling alone down to half size (crop scale s >= 0.5
    crop pixel per source pixel; GRID faces are at 0.6-0.7), and a face that shrinks more is first
    halved (2x2 pixel means) until it does not. The number of halvings is chosen once per clip, from
    its median scale, so sharpness does not flicker between frames; only the source box the crop
    samples is halved, so the cost does not grow with the frame size. A third of the cost of the
    earlier warp at 2x + area-downsample of every crop, which also blurred GRID crops for nothing.
    """
    h, w = size_hw
    out = np.zeros((len(frames), h, w, 3), dtype=np.uint8)
    valid = ~np.isnan(matrices).any(axis=(1, 2))
    levels = halvings(matrices[valid]) if antialias and valid.any() else 0
    for i in np.flatnonzero(valid):
        src, m = _halved_source(frames[i], matrices[i], size_hw, levels) if levels else (frames[i], matrices[i])
        out[i] = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def halvings(matrices: np.ndarray) -> int:
    """How often to halve the source so the median scale of (T, 2, 3) similarities is >= 0.5."""
    det = matrices[:, 0, 0] * matrices[:, 1, 1] - matrices[:, 0, 1] * matrices[:, 1, 0]
    scale = float(np.median(np.sqrt(np.abs(det))))
    return max(0, math.ceil(math.log2(0.5 / scale))) if scale > 0 else 0


def _halved_source(frame: np.ndarray, m: np.ndarray, size_hw: tuple[int, int], levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(the source box the crop samples, halved ``levels`` times, its matrix to the crop)."""
    k = 2**levels  # source pixels per pixel of the halved box
    h, w = size_hw
    a, b = m[:, :2], m[:, 2]
    corners = (np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float) - b) @ np.linalg.inv(a).T
    x0, y0 = (max(int(v), 0) for v in np.floor(corners.min(0)) - 2 * k)  # room for the bilinear neighbour
    x1, y1 = (int(v) for v in np.ceil(corners.max(0)) + 2 * k)
    x1, y1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
    x1, y1 = x1 - (x1 - x0) % k, y1 - (y1 - y0) % k  # whole k x k blocks: exact halvings
    if x1 - x0 < k or y1 - y0 < k:  # the crop lies outside the frame: all border anyway
        return frame, m
    src = frame[y0:y1, x0:x1]
    for _ in range(levels):
        src = cv2.resize(src, (src.shape[1] // 2, src.shape[0] // 2), interpolation=cv2.INTER_AREA)
    # box pixel q covers source pixels k q .. k q + k - 1: source = k q + (k - 1) / 2 + (x0, y0)
    offset = np.array([x0, y0], float) + (k - 1) / 2
    return src, np.concatenate([a * k, (a @ offset + b)[:, None]], axis=1)


# ----------------------------------------------------------------------------------------------
# Head pose


def head_frame(shape: np.ndarray) -> np.ndarray:
    """(3, 3) rows = the head's x (subject right -> left, i.e. image right), y (eyes -> mouth, down)
    and z = x cross y (into the scene) axes for a (478, 3) shape: the frontal pose is the one where
    the plane of the outer eye corners and mouth corners faces the camera."""
    x = np.mean([shape[a] - shape[b] for a, b in SYMMETRIC_PAIRS], axis=0)
    x /= np.linalg.norm(x)
    down = shape[list(MOUTH_CORNERS)].mean(0) - shape[[RIGHT_EYE_OUTER, LEFT_EYE_OUTER]].mean(0)
    y = down - down.dot(x) * x
    y /= np.linalg.norm(y)
    return np.stack([x, y, np.cross(x, y)])


def reference_shape(landmarks: np.ndarray, valid: np.ndarray, interpupillary_cm: float) -> np.ndarray:
    """The clip's mean rigid shape in head coordinates (cm): frames are aligned to the first valid
    one by Umeyama on the rigid points, averaged (two rounds of generalised Procrustes), rotated
    into :func:`head_frame` and scaled to the given interpupillary distance."""
    pts = landmarks[valid].astype(np.float64)
    rigid = pts[:, list(RIGID_POINTS)]
    ref_rigid = _mean_on_reference(rigid[0], rigid, rigid)  # round 1 needs only the rigid points
    ref = _mean_on_reference(ref_rigid, rigid, pts)
    ref = (ref - ref[list(RIGID_POINTS)].mean(0)) @ head_frame(ref).T
    ipd = np.linalg.norm(ref[LEFT_IRIS_CENTER] - ref[RIGHT_IRIS_CENTER])
    return ref * (interpupillary_cm / ipd)


def _mean_on_reference(ref: np.ndarray, fit: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Mean over frames of ``pts`` (T, N, 3), each frame mapped onto ``ref`` by the similarity that
    fits its ``fit`` points to it: R^T (x - t) / s, with ``dst = s R ref + t`` from :func:`umeyama`."""
    s, rot, t = umeyama(ref, fit)
    return ((pts - t[:, None]) @ rot / s[:, None, None]).mean(0)


def estimate_pose(landmarks: np.ndarray, valid: np.ndarray, frame_hw: tuple[int, int], cfg: PoseConfig) -> np.ndarray:
    """(T, 6) yaw, pitch, roll (degrees), tx, ty, tz (cm); NaN where ``valid`` is False.

    No canonical 3-D face model ships with the mediapipe wheel, so the reference is the clip's own
    mean shape made frontal by :func:`head_frame` (see :func:`reference_shape`). Each frame's rigid
    points are fitted to it (Umeyama); rotations are intrinsic Y-X-Z Euler angles with signs:
    yaw > 0 face turned towards the image's right, pitch > 0 looking up, roll > 0 tilted clockwise
    in the image. Translation is of the rigid-point centroid in OpenCV camera coordinates (x right,
    y down, z forward) for a pinhole camera with ``cfg.vertical_fov_deg`` and principal point at the
    frame centre: tz = focal / (pixels per cm), where the scale comes from the reference's assumed
    interpupillary distance. Comparable between videos, not a calibrated metric distance.
    """
    from scipy.spatial.transform import Rotation

    out = np.full((len(landmarks), 6), np.nan, dtype=np.float32)
    if not valid.any():
        return out
    ref = reference_shape(landmarks, valid, cfg.interpupillary_cm)
    s, rot, t = umeyama(ref[list(RIGID_POINTS)], landmarks[valid][:, list(RIGID_POINTS)].astype(np.float64))
    ey, ex, ez = np.degrees(Rotation.from_matrix(rot).as_euler("YXZ")).T
    h, w = frame_hw
    focal = (h / 2) / math.tan(math.radians(cfg.vertical_fov_deg) / 2)
    tz = focal / s
    out[valid] = np.stack([-ey, -ex, ez, (t[:, 0] - w / 2) / s, (t[:, 1] - h / 2) / s, tz], axis=1)
    return out


# ----------------------------------------------------------------------------------------------
# Everything at once (the benchmark's entry point)


def align_track(frames: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, cfg: AlignConfig,
                fps: float) -> dict[str, np.ndarray]:
    """align_matrix (T, 2, 3) float32, face_crop, mouth_crop and landmarks_crop (T, 478, 3)."""
    face_m = alignment_matrices(landmarks, valid, cfg, fps)
    mouth_m = mouth_matrices(face_m, landmarks, valid, cfg, fps)
    return {
        "align_matrix": face_m.astype(np.float32),
        "face_crop": warp_crops(frames, face_m, (cfg.crop_size, cfg.crop_size), cfg.antialias),
        "mouth_crop": warp_crops(frames, mouth_m, cfg.mouth_shape, cfg.antialias),
        "landmarks_crop": apply_affine(face_m, landmarks.astype(np.float64)).astype(np.float32),
    }


def process_frames(
    frames: np.ndarray,
    fps: float,
    landmarks_cfg: LandmarksConfig | None = None,
    align_cfg: AlignConfig | None = None,
    pose_cfg: PoseConfig | None = None,
    tracker: FaceMeshTracker | None = None,
) -> dict[str, Any]:
    """Detect, fill gaps, align and estimate pose for (T, H, W, 3) uint8 RGB frames.

    Returns per-frame arrays: landmarks (T, 478, 3) in source pixels, landmarks_crop (T, 478, 3) in
    aligned-crop pixels, face_found, face_interpolated, n_faces, det_conf (T,), align_matrix
    (T, 2, 3) source->crop, face_crop (T, S, S, 3) and mouth_crop (T, h, w, 3) uint8, pose (T, 6)
    = yaw, pitch, roll, tx, ty, tz. Frames without a face have NaN values and zero crops. Pass a
    ``tracker`` to reuse one MediaPipe graph across videos (it is reset per call); otherwise one is
    made and closed here.
    """
    from talkbench.pipelines.stages.align import AlignConfig
    from talkbench.pipelines.stages.landmarks import LandmarksConfig
    from talkbench.pipelines.stages.pose import PoseConfig

    landmarks_cfg = landmarks_cfg or LandmarksConfig()
    align_cfg = align_cfg or AlignConfig()
    pose_cfg = pose_cfg or PoseConfig()
    own = tracker is None
    tracker = tracker or FaceMeshTracker.from_config(landmarks_cfg)
    try:
        track = detect_landmarks(frames, tracker, landmarks_cfg.max_gap_frames)
    finally:
        if own:
            tracker.close()
    result: dict[str, Any] = {
        "landmarks": track.landmarks,
        "face_found": track.face_found,
        "face_interpolated": track.face_interpolated,
        "n_faces": track.n_faces,
        "det_conf": track.det_conf,
    }
    result.update(align_track(frames, track.landmarks, track.face_found, align_cfg, fps))
    result["pose"] = estimate_pose(track.landmarks, track.face_found, frames.shape[1:3], pose_cfg)
    return result


# ----------------------------------------------------------------------------------------------
# Quality numbers


def face_size(landmarks: np.ndarray) -> np.ndarray:
    """(T,) inter-ocular distance (outer eye corners, 2-D) in source pixels; NaN without a face."""
    return np.linalg.norm(landmarks[:, LEFT_EYE_OUTER, :2] - landmarks[:, RIGHT_EYE_OUTER, :2], axis=-1)


def blur_scores(crops: np.ndarray) -> np.ndarray:
    """(T,) variance of the Laplacian of each grey crop (higher = sharper)."""
    out = np.empty(len(crops), dtype=np.float64)
    for i, img in enumerate(crops):
        # int16 holds a 3x3 Laplacian of uint8 exactly; meanStdDev is one pass, ndarray.var() three
        _, std = cv2.meanStdDev(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_16S))
        out[i] = std[0, 0] ** 2
    return out
