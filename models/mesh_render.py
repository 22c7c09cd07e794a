"""A vectorised z-buffer rasteriser of MediaPipe's face mesh (seed 001: the rendered frames of Yi et al.).

Yi et al. render the fitted 3DMM with tf_mesh_renderer; rendering is preprocessing there (no
gradients), so a plain NumPy z-buffer is enough and keeps the project free of pytorch3d/nvdiffrast,
which cannot be installed here. The mesh is the 854 triangles that are the 3-cliques of
``FACEMESH_TESSELATION`` (1,322 edges over 468 vertices, in the pinned mediapipe wheel; the canonical
OBJ is not shipped). The mouth has no triangles (the tesselation leaves it open), so the mouth
interior is drawn dark behind the lips, as the authors' BFM renders have no teeth either: the GAN
fills it.

Conventions: vertices are (N, 3) with x, y in image pixels (pixel centres at integer coordinates)
and z growing *away* from the camera (MediaPipe's convention), so the smallest z wins.
"""

from __future__ import annotations

import functools
import math

import numpy as np

N_MESH = 468
#: the inner lip contour, a cycle (corner 78, upper lip to corner 308, lower lip back)
INNER_LIP_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LIP_LOWER = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
#: eyelids without their corners: no triangle may join an upper and a lower lid (eyes can close,
#: but the mesh must not bridge an open eye)
EYELIDS = {
    "right": ((246, 161, 160, 159, 158, 157, 173), (7, 163, 144, 145, 153, 154, 155)),
    "left": ((466, 388, 387, 386, 385, 384, 398), (249, 390, 373, 374, 380, 381, 382)),
}
MOUTH_COLOUR = (28, 14, 14)


@functools.cache
def triangles() -> np.ndarray:
    """(854, 3) int32 vertex indices: the 3-cliques of the face mesh tesselation, sorted."""
    from collections import defaultdict

    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    edges = {tuple(sorted(e)) for e in FACEMESH_TESSELATION}
    adj: dict[int, set[int]] = defaultdict(set)
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in adj[a] & adj[b]}
    return np.array(sorted(tris), dtype=np.int32)


@functools.cache
def face_oval() -> np.ndarray:
    """The face-oval vertex indices as one ordered cycle."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    nxt = dict(FACEMESH_FACE_OVAL)
    start = min(nxt)
    cycle = [start]
    while nxt[cycle[-1]] != start:
        cycle.append(nxt[cycle[-1]])
    return np.array(cycle, dtype=np.int32)


def _mouth_fan(vertices: np.ndarray, depth_offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Extra vertices (copies of the inner lip + its centroid pushed back) and the fan triangles that
    close the mouth; returned indices are relative to the extra block."""
    ring = list(INNER_LIP_UPPER) + list(INNER_LIP_LOWER[1:-1])
    pts = vertices[ring].astype(np.float64)
    centre = pts.mean(0)
    centre[2] = pts[:, 2].max() + depth_offset
    extra = np.concatenate([pts, centre[None]])
    n = len(ring)
    fan = np.array([[i, (i + 1) % n, n] for i in range(n)], dtype=np.int32)
    return extra, fan


# ---------------------------------------------------------------------------- rasterisation
def _fragments(v: np.ndarray, tri_ids: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Every covered pixel of the triangles ``v`` (F, 3, 3): (pixel index, z, triangle id, barycentrics).

    Triangles are grouped by bounding-box size (powers of two) so each group is one dense
    (F_g, B, B) evaluation of the three edge functions.
    """
    h, w = hw
    x0 = np.floor(v[:, :, 0].min(1)).astype(np.int64)
    y0 = np.floor(v[:, :, 1].min(1)).astype(np.int64)
    x1 = np.ceil(v[:, :, 0].max(1)).astype(np.int64)
    y1 = np.ceil(v[:, :, 1].max(1)).astype(np.int64)
    area = ((v[:, 1, 0] - v[:, 0, 0]) * (v[:, 2, 1] - v[:, 0, 1])
            - (v[:, 1, 1] - v[:, 0, 1]) * (v[:, 2, 0] - v[:, 0, 0]))
    keep = (np.abs(area) > 1e-12) & (x1 >= 0) & (y1 >= 0) & (x0 < w) & (y0 < h)
    side = np.maximum(x1 - x0, y1 - y0) + 1
    bucket = np.ceil(np.log2(np.maximum(side, 1))).astype(np.int64)
    out = []
    for b in np.unique(bucket[keep]):
        sel = np.flatnonzero(keep & (bucket == b))
        size = 2 ** int(b)
        off = np.arange(size)
        px = (x0[sel, None, None] + off[None, None, :]).astype(np.float64)  # (F, 1, B)
        py = (y0[sel, None, None] + off[None, :, None]).astype(np.float64)  # (F, B, 1)
        t = v[sel]
        ws = []
        for i, j in ((1, 2), (2, 0), (0, 1)):  # barycentric weight of vertex k = edge (i, j) opposite it
            ax, ay = t[:, i, 0, None, None], t[:, i, 1, None, None]
            bx, by = t[:, j, 0, None, None], t[:, j, 1, None, None]
            ws.append(((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / area[sel, None, None])
        w0, w1, w2 = np.broadcast_arrays(*ws)
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        pxb, pyb = np.broadcast_to(px, w0.shape), np.broadcast_to(py, w0.shape)
        inside &= (pxb >= 0) & (pxb < w) & (pyb >= 0) & (pyb < h)
        f, r, c = np.nonzero(inside)
        bary = np.stack([w0[f, r, c], w1[f, r, c], w2[f, r, c]], axis=1)
        z = (bary * t[f, :, 2]).sum(1)
        pix = (pyb[f, r, c] * w + pxb[f, r, c]).astype(np.int64)
        out.append((pix, z, tri_ids[sel][f], bary))
    if not out:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 3))
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))


def rasterise(vertices: np.ndarray, tris: np.ndarray, colours: np.ndarray, hw: tuple[int, int],
              background: tuple[int, int, int] | np.ndarray = (0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer render of coloured triangles: -> (image (H, W, 3) uint8, triangle id per pixel, -1 = none).

    Every covered pixel of every triangle is evaluated at once; per pixel the nearest fragment
    (smallest z; ties: lowest triangle id) is kept with one lexsort, and its colour interpolated
    from the vertex colours with the barycentrics.
    """
    h, w = hw
    v = np.asarray(vertices, np.float64)[np.asarray(tris)]
    pix, z, tid, bary = _fragments(v, np.arange(len(tris)), hw)
    image = np.empty((h * w, 3), np.float64)
    image[:] = np.asarray(background, np.float64)
    ids = np.full(h * w, -1, np.int64)
    if len(pix):
        order = np.lexsort((tid, z, pix))
        first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
        col = np.asarray(colours, np.float64)[np.asarray(tris)[tid[first]]]  # (P, 3 vertices, 3)
        image[pix[first]] = (bary[first, :, None] * col).sum(1)
        ids[pix[first]] = tid[first]
    return np.clip(np.round(image), 0, 255).astype(np.uint8).reshape(h, w, 3), ids.reshape(h, w)


def rasterise_naive(vertices: np.ndarray, tris: np.ndarray, colours: np.ndarray, hw: tuple[int, int],
                    background: tuple[int, int, int] = (0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """The textbook loop: triangle by triangle, pixel by pixel of its box, depth test per pixel.
    The perf baseline and an independent reference for :func:`rasterise`."""
    h, w = hw
    depth = np.full((h, w), np.inf)
    ids = np.full((h, w), -1, np.int64)
    image = np.empty((h, w, 3), np.float64)
    image[:] = background
    v = np.asarray(vertices, np.float64)
    for k, (a, b, c) in enumerate(np.asarray(tris)):
        p = v[[a, b, c]]
        area = (p[1, 0] - p[0, 0]) * (p[2, 1] - p[0, 1]) - (p[1, 1] - p[0, 1]) * (p[2, 0] - p[0, 0])
        if abs(area) <= 1e-12:
            continue
        for y in range(max(0, math.floor(p[:, 1].min())), min(h - 1, math.ceil(p[:, 1].max())) + 1):
            for x in range(max(0, math.floor(p[:, 0].min())), min(w - 1, math.ceil(p[:, 0].max())) + 1):
                bw = []
                for i, j in ((1, 2), (2, 0), (0, 1)):
                    bw.append(((p[j, 0] - p[i, 0]) * (y - p[i, 1]) - (p[j, 1] - p[i, 1]) * (x - p[i, 0])) / area)
                if min(bw) < 0:
                    continue
                z = bw[0] * p[0, 2] + bw[1] * p[1, 2] + bw[2] * p[2, 2]
                if z < depth[y, x] or (z == depth[y, x] and k < ids[y, x]):
                    depth[y, x], ids[y, x] = z, k
                    image[y, x] = sum(bw[i] * np.asarray(colours[t], np.float64) for i, t in enumerate((a, b, c)))
    return np.clip(np.round(image), 0, 255).astype(np.uint8), ids


# ---------------------------------------------------------------------------- the face renders
def sample_vertex_colours(frames: np.ndarray, vertices_2d: np.ndarray) -> np.ndarray:
    """Per-vertex colour (N, 3) float: the median over frames of the frame's pixel under the vertex
    (bilinear), so one frame's blink or occlusion does not stain the texture."""
    import cv2

    cols = []
    for img, pts in zip(frames, vertices_2d, strict=True):
        mx = np.ascontiguousarray(pts[:, 0], np.float32)[:, None]
        my = np.ascontiguousarray(pts[:, 1], np.float32)[:, None]
        cols.append(cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0])
    return np.median(np.stack(cols).astype(np.float64), axis=0)


def render_shaded(vertices: np.ndarray, colours: np.ndarray, hw: tuple[int, int],
                  background: tuple[int, int, int] = (0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """The face mesh with per-vertex colours and a dark mouth interior -> (image, face mask)."""
    v = np.asarray(vertices, np.float64)[:N_MESH]
    size = np.ptp(v[:, 0]) if len(v) else 1.0
    extra, fan = _mouth_fan(v, depth_offset=0.05 * size)
    allv = np.concatenate([v, extra])
    cols = np.concatenate([np.asarray(colours, np.float64)[:N_MESH],
                           np.tile(np.asarray(MOUTH_COLOUR, np.float64), (len(extra), 1))])
    tris = np.concatenate([triangles(), fan + N_MESH])
    image, ids = rasterise(allv, tris, cols, hw, background)
    return image, ids >= 0


def render_sketch(vertices: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The cheaper ablation: flat face region, dark mouth, feature contours as coloured lines (no texture)."""
    import cv2
    from mediapipe.python.solutions import face_mesh_connections as fm

    h, w = hw
    img = np.zeros((h, w, 3), np.uint8)
    v = np.round(np.asarray(vertices, np.float64)[:, :2]).astype(np.int32)
    cv2.fillPoly(img, [v[face_oval()]], (150, 150, 150))
    mask = img[..., 0] > 0
    ring = list(INNER_LIP_UPPER) + list(INNER_LIP_LOWER[1:-1])
    cv2.fillPoly(img, [v[ring]], MOUTH_COLOUR)
    parts = [(fm.FACEMESH_LIPS, (200, 60, 60)), (fm.FACEMESH_LEFT_EYE, (40, 40, 200)),
             (fm.FACEMESH_RIGHT_EYE, (40, 40, 200)), (fm.FACEMESH_LEFT_EYEBROW, (60, 160, 60)),
             (fm.FACEMESH_RIGHT_EYEBROW, (60, 160, 60)), (fm.FACEMESH_NOSE, (200, 200, 60))]
    for edges, colour in parts:
        for a, b in edges:
            cv2.line(img, tuple(int(t) for t in v[a]), tuple(int(t) for t in v[b]), colour, 1, cv2.LINE_AA)
    return img, mask


def face_oval_mask(vertices: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(H, W) bool: the polygon of the face oval (the reference for the render-overlap test)."""
    import cv2

    m = np.zeros(hw, np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(vertices)[face_oval(), :2]).astype(np.int32)], 1)
    return m.astype(bool)
