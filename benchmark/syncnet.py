"""SyncNet (Chung & Zisserman 2016) as released in joonson/syncnet_python, for LSE-D / LSE-C.

The module's parameter names and shapes match the released ``syncnet_v2.model`` state dict
(``netcnnaud.*``, ``netfcaud.*``, ``netcnnlip.*``, ``netfclip.*``) so the file loads with strict=True.
Inputs follow syncnet_python's ``evaluate``:

- video: 5 consecutive 224x224 face crops, **BGR** (cv2), float 0-255 unnormalised -> (N, 3, 5, 224, 224);
- audio: MFCC of 16 kHz audio as python_speech_features computes it (13 coefficients, 25 ms rectangular
  window, 10 ms hop, 26 mel filters, 512-point FFT, pre-emphasis 0.97, lifter 22, c0 = log frame
  energy) on the int16 sample scale; window for video frame i = MFCC frames 4i .. 4i+19 -> (N, 1, 13, 20).

Our face crops come from talkbench's own alignment (not syncnet_python's S3FD tracker crop), so the
LSE numbers follow the protocol but are not bit-identical to the reference scripts.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

WINDOW = 5  # video frames per embedding
MFCC_PER_FRAME = 4  # 10 ms MFCC hops per 40 ms video frame
MFCC_WINDOW = 20
FACE_SIZE = 224


def _bn_relu_2d(c: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(c), nn.ReLU(inplace=True)]


def _bn_relu_3d(c: int) -> list[nn.Module]:
    return [nn.BatchNorm3d(c), nn.ReLU(inplace=True)]


class SyncNet(nn.Module):
    """The ``S`` network of syncnet_python (module indices matter: they are the state-dict keys)."""

    def __init__(self, embed_dim: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, 3, padding=1), *_bn_relu_2d(64), nn.MaxPool2d(1, 1),
            nn.Conv2d(64, 192, 3, padding=1), *_bn_relu_2d(192), nn.MaxPool2d(3, (1, 2)),
            nn.Conv2d(192, 384, 3, padding=1), *_bn_relu_2d(384),
            nn.Conv2d(384, 256, 3, padding=1), *_bn_relu_2d(256),
            nn.Conv2d(256, 256, 3, padding=1), *_bn_relu_2d(256), nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 512, (5, 4)), *_bn_relu_2d(512),
        )
        self.netfcaud = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))
        self.netfclip = nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), *_bn_relu_3d(96), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), *_bn_relu_3d(256),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu_3d(256),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu_3d(256),
            nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), *_bn_relu_3d(256),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
            nn.Conv3d(256, 512, (1, 6, 6)), *_bn_relu_3d(512),
        )

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, 1024)."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 -> (N, 1024)."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


def load_syncnet(device: str | torch.device = "cpu") -> SyncNet:
    """The released syncnet_v2 weights from the weights store (WeightsMissingError when absent)."""
    from talkbench import weights

    net = SyncNet()
    state = weights.load_state_dict("syncnet_v2")
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()


# --- audio features: python_speech_features.mfcc, reimplemented (its filterbank and framing differ from
# librosa's, and the released weights were trained on exactly these features) ---------------------------


def _hz2mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel2hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def _filterbank(nfilt: int, nfft: int, sr: int) -> np.ndarray:
    mels = np.linspace(_hz2mel(0.0), _hz2mel(sr / 2), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel2hz(mels) / sr)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        lo, mid, hi = int(bins[j]), int(bins[j + 1]), int(bins[j + 2])
        for i in range(lo, mid):
            fb[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(mid, hi):
            fb[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return fb


def syncnet_mfcc(audio_int16_scale: np.ndarray, sr: int = 16_000, numcep: int = 13, nfilt: int = 26,
                 nfft: int = 512, winlen: float = 0.025, winstep: float = 0.01, preemph: float = 0.97,
                 lifter: int = 22) -> np.ndarray:
    """(numcep, n_frames) MFCC exactly as ``python_speech_features.mfcc`` (defaults) computes them."""
    from scipy.fftpack import dct

    x = np.asarray(audio_int16_scale, np.float64)
    x = np.append(x[0], x[1:] - preemph * x[:-1])
    flen, fstep = int(math.floor(winlen * sr + 0.5)), int(math.floor(winstep * sr + 0.5))
    n = 1 if len(x) <= flen else 1 + int(math.ceil((len(x) - flen) / fstep))
    x = np.concatenate([x, np.zeros((n - 1) * fstep + flen - len(x))])
    idx = np.arange(flen)[None, :] + fstep * np.arange(n)[:, None]
    frames = x[idx]  # rectangular window
    pspec = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    energy = pspec.sum(axis=1)
    energy = np.where(energy == 0, np.finfo(float).eps, energy)
    feat = pspec @ _filterbank(nfilt, nfft, sr).T
    feat = np.where(feat == 0, np.finfo(float).eps, feat)
    cep = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :numcep]
    cep *= 1 + (lifter / 2.0) * np.sin(np.pi * np.arange(numcep) / lifter)
    cep[:, 0] = np.log(energy)
    return cep.T


def audio_windows(audio: np.ndarray, n_windows: int, sr: int = 16_000) -> np.ndarray:
    """(n_windows, 1, 13, 20) MFCC windows of ``audio`` (float in [-1, 1]) as the int16 samples syncnet_python
    reads from its wav: scaled by 2^15, rounded and clipped as ffmpeg's float -> s16 conversion does (unrounded
    samples moved MFCCs of silent frames by up to 0.48)."""
    if sr != 16_000:
        raise ValueError(f"SyncNet needs 16 kHz audio, got {sr} Hz")
    pcm = np.clip(np.rint(np.asarray(audio, np.float64) * 32768.0), -32768, 32767)
    mfcc = syncnet_mfcc(pcm, sr).astype(np.float32)
    starts = np.arange(n_windows) * MFCC_PER_FRAME
    if n_windows and starts[-1] + MFCC_WINDOW > mfcc.shape[1]:
        raise ValueError(f"audio too short for {n_windows} SyncNet windows")
    idx = starts[:, None] + np.arange(MFCC_WINDOW)[None, :]
    return mfcc[:, idx].transpose(1, 0, 2)[:, None]


def n_windows(n_frames: int, n_samples: int, sr: int = 16_000, fps: float = 25.0) -> int:
    """Number of 5-frame windows syncnet_python scores: min(frames, audio frames) - 5 (its convention)."""
    min_length = min(n_frames, int(n_samples // round(sr / fps)))
    return max(0, min_length - WINDOW)


def face_windows(faces: np.ndarray, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """(stop-start, 3, 5, 224, 224) BGR float windows from (T, S, S, 3) RGB uint8 aligned face crops."""
    import torch.nn.functional as F

    clip = torch.as_tensor(np.ascontiguousarray(faces[start: stop + WINDOW - 1, :, :, ::-1]), device=device)
    x = clip.permute(0, 3, 1, 2).float()  # (t, 3, S, S), BGR
    if x.shape[-1] != FACE_SIZE or x.shape[-2] != FACE_SIZE:
        x = F.interpolate(x, size=(FACE_SIZE, FACE_SIZE), mode="bilinear", align_corners=False)
    x = x.permute(1, 0, 2, 3)  # (3, t, 224, 224)
    return x.unfold(1, WINDOW, 1).permute(1, 0, 4, 2, 3).contiguous()  # (n, 3, 5, 224, 224)


# --------------------------------------------------------------------------- syncnet_python's own face crop
#: syncnet_python's run_pipeline crop (its defaults): the box half-size s = max(w, h) / 2 of the face
#: detection, median-filtered over the track (kernel 13, scipy's zero-padded medfilt), a window of
#: 2 (1 + crop_scale) s square reaching s above the box centre and (1 + 2 crop_scale) s below it, grey 110
#: outside the frame, resized to 224 x 224 (cv2 bilinear). The network takes that 224² crop as it is.
PYCROP_SCALE = 0.4
PYCROP_MEDFILT = 13
PYCROP_FILL = 110


def pycrop_track(boxes: np.ndarray, kernel: int = PYCROP_MEDFILT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, 4) face boxes x1, y1, x2, y2 -> smoothed (half-size s, centre x, centre y), each (T,).

    scipy's medfilt zero-pads, exactly as syncnet_python runs it; a window then still holds at least 7
    real values when T >= 7. Shorter tracks (syncnet_python never scores under 100 frames) would be
    smoothed to 0, so they take the largest odd kernel <= T instead.
    """
    import warnings

    from scipy.signal import medfilt

    b = np.asarray(boxes, np.float64)
    if len(b) < kernel // 2 + 1:
        kernel = len(b) if len(b) % 2 else len(b) - 1
    s = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    if kernel <= 1:
        return s, cx, cy
    with warnings.catch_warnings():  # "kernel_size exceeds volume extent": the zero padding is intended
        warnings.simplefilter("ignore", UserWarning)
        return medfilt(s, kernel), medfilt(cx, kernel), medfilt(cy, kernel)


def pycrop_window(frame: np.ndarray, s: float, cx: float, cy: float, crop_scale: float = PYCROP_SCALE) -> np.ndarray:
    """The un-resized crop of one frame: rows [cy - s, cy + (1 + 2c) s), columns cx ± (1 + c) s, each bound
    truncated to an integer in a frame padded by int((1 + 2c) s) pixels of grey 110 on every side."""
    pad = int(s * (1 + 2 * crop_scale))
    top, bottom = int(cy + pad - s), int(cy + pad + s * (1 + 2 * crop_scale))
    left, right = int(cx + pad - s * (1 + crop_scale)), int(cx + pad + s * (1 + crop_scale))
    h, w = frame.shape[:2]
    out = np.full((max(0, bottom - top), max(0, right - left), frame.shape[2]), PYCROP_FILL, frame.dtype)
    # padded-frame coordinates -> frame coordinates: minus pad; copy the part that lies inside the frame
    r0, r1 = max(top - pad, 0), min(bottom - pad, h)
    c0, c1 = max(left - pad, 0), min(right - pad, w)
    if r1 > r0 and c1 > c0:
        out[r0 - (top - pad): r1 - (top - pad), c0 - (left - pad): c1 - (left - pad)] = frame[r0:r1, c0:c1]
    return out


def pycrop_faces(frames: np.ndarray, boxes: np.ndarray, crop_scale: float = PYCROP_SCALE) -> np.ndarray:
    """(T, H, W, 3) frames and (T, 4) face boxes -> (T, 224, 224, 3) crops as syncnet_python makes them."""
    import cv2

    s, cx, cy = pycrop_track(boxes)
    return np.stack([cv2.resize(pycrop_window(f, s[i], cx[i], cy[i], crop_scale), (FACE_SIZE, FACE_SIZE))
                     for i, f in enumerate(frames)])


def mesh_boxes(landmarks_crop: np.ndarray, align_matrix: np.ndarray, found: np.ndarray) -> np.ndarray:
    """(T, 4) face boxes in frame pixels: the extent of the face mesh, mapped back from the aligned crop.

    Stands in for syncnet_python's S3FD detections (not installable here). Frames without a face take
    the box linearly interpolated between their neighbours (the ends hold the nearest), as its tracker
    interpolates missed detections.
    """
    found = np.asarray(found, bool)
    if not found.any():
        raise ValueError("no face on any frame: no box to crop")
    n = len(found)
    boxes = np.full((n, 4), np.nan)
    for i in np.flatnonzero(found):
        m = np.asarray(align_matrix[i], np.float64)
        inv = np.linalg.inv(m[:, :2])
        pts = (np.asarray(landmarks_crop[i, :, :2], np.float64) - m[:, 2]) @ inv.T
        boxes[i] = [pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()]
    idx = np.flatnonzero(found)
    return np.stack([np.interp(np.arange(n), idx, boxes[idx, k]) for k in range(4)], axis=1)
