"""Benchmark adapter for talkbench's own generators: ``generate(reference_image, audio_16k, fps)``.

The reference image is aligned with the preparation pipeline's face tracker and the audio turned into
MFCC windows with the pipeline's audio functions, using the settings recorded in the checkpoint, so a
model sees at test time exactly what it saw in training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from talkbench.schema import FPS, SAMPLE_RATE

GENERATORS = ("au_rgan", "tcn_sa")


class CheckpointGenerator:
    """Wraps a trained AU-RGAN or TCN-SA checkpoint (folder or model.safetensors)."""

    batch_size = 1

    def __init__(self, checkpoint: str | Path, device: str = "cpu", align: bool | str = True,
                 max_frames_per_chunk: int | str = 250):
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.align = str(align).lower() not in ("false", "0", "no")
        self.chunk = int(max_frames_per_chunk)
        self.model = None
        self.meta: dict[str, str] = {}

    def setup(self) -> None:
        from talkbench.errors import TalkbenchError
        from talkbench.models.checkpoint import load_model, read_metadata

        self.meta = read_metadata(self.checkpoint)
        if self.meta["talkbench_model"] not in GENERATORS:
            raise TalkbenchError(f"{self.checkpoint} holds a {self.meta['talkbench_model']!r} model, "
                                 f"not a generator ({', '.join(GENERATORS)})")
        self.model, _ = load_model(self.checkpoint, device=self.device)
        self.pipeline_cfg = json.loads(self.meta.get("pipeline_config", "{}"))

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    def _reference_crop(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> the aligned (S, S, 3) face crop the model was trained on."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"reference_image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        if self.align:
            from talkbench.pipelines.face import process_frames
            from talkbench.pipelines.stages.align import AlignConfig
            from talkbench.pipelines.stages.landmarks import LandmarksConfig

            out = process_frames(image[None], FPS, LandmarksConfig.model_validate(self.pipeline_cfg.get("landmarks", {})),
                                 AlignConfig.model_validate(self.pipeline_cfg.get("align", {})))
            if not out["face_found"][0]:
                raise ValueError("no face found in the reference image")
            image = out["face_crop"][0]
        if image.shape[:2] != (self.image_size, self.image_size):
            import cv2

            image = cv2.resize(image, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
        return image

    def generate(self, reference_image: np.ndarray, audio_16k: np.ndarray, fps: float = FPS) -> np.ndarray:
        """Frames (T, S, S, 3) uint8 with T = round(duration * fps)."""
        import torch

        from talkbench.models.features import mfcc_from_audio, mfcc_windows
        from talkbench.models.layers import to_image

        if self.model is None:
            self.setup()
        if abs(fps - FPS) > 1e-6:
            raise ValueError(f"this generator makes {FPS} fps video (4 MFCC hops per frame); got fps={fps}")
        audio = np.asarray(audio_16k, dtype=np.float32).reshape(-1)
        n = round(len(audio) / SAMPLE_RATE * FPS)
        if n < 1:
            raise ValueError("the audio is shorter than one video frame")
        windows = mfcc_windows(mfcc_from_audio(audio, SAMPLE_RATE, n, self.pipeline_cfg.get("audio_features")))
        crop = self._reference_crop(reference_image)
        identity = to_image(torch.from_numpy(crop.transpose(2, 0, 1).copy())[None]).to(self.device)
        out = []
        with torch.inference_mode():
            # chunks bound memory on long audio; the recurrent state restarts per chunk (documented limit)
            for s in range(0, n, self.chunk):
                w = torch.from_numpy(windows[None, s : s + self.chunk]).to(self.device)
                frames = self.model.generator(identity, w)["frames"][0]
                out.append(((frames.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out)


def generate_video(checkpoint: str | Path, reference: str | Path, audio_path: str | Path, out: str | Path,
                   device: str = "cpu", align: bool = True) -> Path:
    """``talkbench generate``: read the reference image and the audio, write an MP4 with the audio muxed."""
    from talkbench.errors import ClipError, TalkbenchError
    from talkbench.media import read_audio, write_video

    ref = Path(reference)
    if not ref.is_file():
        raise TalkbenchError(f"reference image not found: {ref}")
    try:
        from PIL import Image

        image = np.asarray(Image.open(ref).convert("RGB"))
    except OSError as e:
        raise TalkbenchError(f"{ref}: not an image: {e}") from None
    if not Path(audio_path).is_file():
        raise TalkbenchError(f"audio file not found: {audio_path}")
    try:
        audio = read_audio(audio_path, SAMPLE_RATE)
    except ClipError as e:
        raise TalkbenchError(e.message) from None
    gen = CheckpointGenerator(checkpoint, device=device, align=align)
    gen.setup()
    try:
        frames = gen.generate(image, audio, FPS)
    except ValueError as e:
        raise TalkbenchError(str(e)) from None
    return write_video(out, frames, FPS, audio[: round(len(frames) / FPS * SAMPLE_RATE)], SAMPLE_RATE)
