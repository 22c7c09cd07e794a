"""The generator protocol: how any talkbench generator makes frames, and the one adapter that runs it.

``talkbench generate`` and ``checkpoint:CKPT`` benchmark submissions both go through
``CheckpointGenerator``: it reads the checkpoint's model name, looks up that model's ``ModelSpec`` and
calls ``spec.generate(model, inputs)``. Everything model-specific happens inside that entry, so a
one-pass GAN (AU-RGAN, TCN-SA), an iterative sampler (a diffusion renderer running N denoising steps)
or a render-then-refine pipeline (a 3-D face render refined by a network) all fit the same call.

How to add a generator (2-3 files, nothing else to touch)
--------------------------------------------------------
1. ``models/NAME.py`` holds the model, its training objective and its generate entry::

       class MyConfig(StrictModel): ...                    # every hyper-parameter, with defaults
       class MyModel(nn.Module):
           def __init__(self, cfg: MyConfig): ...
       class MyObjective(Objective):                        # models/objective.py: the training protocol
           LossConfig = MyLossConfig
           def data_spec(self) -> DataSpec: ...             # which shard columns a batch holds
           def loss(self, group, parts, batch): ...         # -> (loss tensor, logs)
           def validate(self, model, batches): ...
       class MyOptions(StrictModel):                        # options a submission may pass (?steps=4)
           steps: int = 50
       def generate(model, inputs: GenerationInputs) -> np.ndarray:
           ...                                              # any inference: one pass, a sampler loop, ...
           return frames                                    # (inputs.n_frames, S, S, 3) uint8
                                                            # or Generated(frames, predicted_aus={"AU25": (T,)})
                                                            # when the model predicts AUs from the audio
       SPEC = ModelSpec(module=MyModel, config=MyConfig, objective=MyObjective, generate=generate,
                        generate_options=MyOptions, tiny=(...overrides that train in seconds...))

2. One line in ``models/registry.py``: ``MODELS.register("NAME", lazy="talkbench.models.NAME:SPEC")``.
   The name then appears in ``talkbench train`` choices, ``perf training``, the parametrised model
   tests (tests/test_models.py) and ``checkpoint:`` submissions, with nothing else to edit.
3. ``make configs`` (or ``python -m talkbench.models.configs``) writes ``configs/models/NAME.yaml``
   from the config classes; a test fails while it is stale.

Personalised generators (yi2020) also give ``personalize=fn(model, frames, audio, options) -> model`` (the
model fine-tuned on a target person's video; personalized benchmark tasks call it per clip before
``generate``) and ``reference=False`` when they draw their target rather than a reference image (then
``inputs.identity`` is empty and ``talkbench generate`` needs no ``--reference``).

``inputs.identity`` holds the reference face(s) already aligned and resized the way the training shards
were (the checkpoint records the shards' face settings); ``inputs.audio`` is 16 kHz mono float32. A
generator that needs per-frame audio features computes them from ``inputs.pipeline_config`` so it sees
at test time what it saw in training. ``inputs.options`` is the validated ``generate_options`` model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from talkbench.schema import FPS, SAMPLE_RATE


@dataclass
class GenerationInputs:
    """What every generate entry receives."""

    identity: np.ndarray  # (K, S, S, 3) uint8: K >= 1 aligned reference crops at the model's size
    audio: np.ndarray  # (N,) float32 mono at SAMPLE_RATE
    n_frames: int  # frames to return: round(duration * fps)
    fps: float
    pipeline_config: dict[str, Any]  # the training shards' landmarks/align/audio_features sections
    options: Any  # the spec's generate_options instance (or None)
    device: str = "cpu"
    #: dubbing tasks: the target's aligned crops (T, S, S, 3) uint8 with the lower face zeroed, and the
    #: (T, S, S) bool lower-face masks in crop pixels; None on one-shot tasks
    target_frames: np.ndarray | None = None
    target_lower: np.ndarray | None = None


@dataclass
class Generated:
    """A generate entry's result when it has more to say than frames.

    ``predicted_aus``: the model's own Audio-to-AU prediction, AU name -> (n_frames,) intensities on the
    0-5 scale. The benchmark compares it with the AUs measured on the generated frames (metric
    ``au-audio-consistency``): does the video show what the model's audio branch asked for?
    """

    frames: np.ndarray
    predicted_aus: dict[str, np.ndarray] | None = None


class GenerateFn(Protocol):
    def __call__(self, model: Any, inputs: GenerationInputs) -> np.ndarray | Generated:
        """(n_frames, S, S, 3) uint8 frames, or :class:`Generated` (frames + predicted AUs)."""


def unpack(result: Any) -> Generated:
    """A generate entry's return value (frames or :class:`Generated`) as :class:`Generated`."""
    return result if isinstance(result, Generated) else Generated(np.asarray(result))


class CheckpointGenerator:
    """Any trained talkbench generator checkpoint (folder or model.safetensors) as a benchmark adapter.

    Keyword options other than device/align are the model's ``generate_options`` (validated, so a typo
    is a clear error rather than a silently ignored setting).
    """

    batch_size = 1

    def __init__(self, checkpoint: str | Path, device: str = "cpu", align: bool | str = True, **options: Any):
        from talkbench.errors import ConfigError, TalkbenchError
        from talkbench.models.checkpoint import read_metadata
        from talkbench.models.registry import MODELS

        self.checkpoint = Path(checkpoint)
        self.device = device
        self.align = str(align).lower() not in ("false", "0", "no")
        self.model: Any = None
        self._general: Any = None  # the loaded model; personalised models are derived from it per target
        self.meta = read_metadata(self.checkpoint)
        name = self.meta["talkbench_model"]
        self.spec = MODELS.get(name)
        if not self.spec.is_generator:
            gens = [n for n, s in MODELS.items() if s.is_generator]
            raise TalkbenchError(f"{self.checkpoint} holds a {name!r} model, not a generator ({', '.join(gens)})")
        self.options = None
        if self.spec.generate_options is not None:
            from pydantic import ValidationError

            try:
                self.options = self.spec.generate_options.model_validate(options)
            except ValidationError as e:
                raise ConfigError(f"{name} generate options {options}: {e}") from None
        elif options:
            raise ConfigError(f"{name} takes no generate options, got {options}")
        self.pipeline_cfg = json.loads(self.meta.get("pipeline_config", "{}"))

    @property
    def variant(self) -> str | None:
        """The sampling variant a generator records with its results (e.g. mftfg's ``ddim50-full_face``):
        its spec's ``extra["variant"](options, model_config)``; None for one-pass generators."""
        fn = self.spec.extra.get("variant")
        return fn(self.options, json.loads(self.meta.get("model_config", "{}"))) if fn is not None else None

    def setup(self) -> None:
        from talkbench.models.checkpoint import load_model

        self.model, _ = load_model(self.checkpoint, device=self.device)
        self._general = self.model

    @property
    def personalize(self) -> Any:
        """``personalize(frames, audio)`` for models whose spec has a personalise hook; an AttributeError
        otherwise, so the harness scores any other generator as a non-personalised baseline."""
        if self.spec.personalize is None:
            raise AttributeError(f"{self.meta['talkbench_model']} has no personalise hook")
        return self._personalize

    def _personalize(self, frames: np.ndarray, audio_16k: np.ndarray) -> None:
        """Fine-tune the loaded (general) model on one target's frames; the next generate uses the result.
        Every call starts again from the general model (one target per benchmark clip)."""
        if self.model is None:
            self.setup()
        self.model = self.spec.personalize(self._general, np.asarray(frames),
                                           np.asarray(audio_16k, dtype=np.float32).reshape(-1), self.options)

    @property
    def image_size(self) -> int | None:
        return getattr(self.model.cfg, "image_size", None)

    def _reference_crop(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> the aligned (S, S, 3) face crop the model was trained on."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"reference_image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        if self.align:
            from talkbench.pipelines.face import FaceProcessor, FaceSettings

            settings = FaceSettings.model_validate({k: self.pipeline_cfg.get(k, {}) for k in ("landmarks", "align")})
            with FaceProcessor(settings, FPS) as face:
                track = face.process(image[None], aus=False)
            if not track.face_found[0]:
                raise ValueError("no face found in the reference image")
            image = track.face_crop[0]
        size = self.image_size
        if size and image.shape[:2] != (size, size):
            import cv2

            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        return image

    def generate(self, reference_image: np.ndarray, audio_16k: np.ndarray, fps: float = FPS) -> np.ndarray:
        """Frames (T, S, S, 3) uint8 with T = round(duration * fps). ``reference_image`` may also be a
        list of images (generators that condition on several references use them all)."""
        return self.generate_with_aus(reference_image, audio_16k, fps).frames

    def generate_with_aus(self, reference_image: np.ndarray, audio_16k: np.ndarray, fps: float = FPS) -> Generated:
        """:meth:`generate` plus the model's predicted AUs when its generate entry exposes them (the
        optional adapter method the benchmark calls to score ``au-audio-consistency``)."""
        if self.model is None:
            self.setup()
        audio = np.asarray(audio_16k, dtype=np.float32).reshape(-1)
        n = round(len(audio) / SAMPLE_RATE * fps)
        if n < 1:
            raise ValueError("the audio is shorter than one video frame")
        if self.spec.reference:
            refs = reference_image if isinstance(reference_image, list | tuple) else [reference_image]
            identity = np.stack([self._reference_crop(r) for r in refs])
        else:  # the model draws its own (personalised) target: no reference face to align
            identity = np.zeros((0, 0, 0, 3), np.uint8)
        inputs = GenerationInputs(identity=identity, audio=audio, n_frames=n, fps=fps,
                                  pipeline_config=self.pipeline_cfg, options=self.options, device=self.device)
        result = unpack(self.spec.generate(self.model, inputs))
        frames = np.asarray(result.frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or len(frames) != n:
            raise ValueError(f"{self.meta['talkbench_model']} generate returned {frames.shape} {frames.dtype}; "
                             f"expected ({n}, S, S, 3) uint8")
        return Generated(frames, result.predicted_aus)

    def dub(self, masked_frames: np.ndarray, masks: np.ndarray, audio_16k: np.ndarray, fps: float = FPS) -> np.ndarray:
        """Dubbing tasks (benchmark/dubbing.py): fill the masked lower face of the target frames."""
        return dub_with(self, masked_frames, masks, audio_16k, fps)


def _nearest_valid(mats: np.ndarray, found: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(found)
    nearest = idx[np.abs(np.arange(len(found))[:, None] - idx[None]).argmin(axis=1)]
    return mats[nearest]


def dub_with(gen: CheckpointGenerator, masked_frames: np.ndarray, masks: np.ndarray, audio_16k: np.ndarray,
             fps: float = FPS) -> np.ndarray:
    """Dubbing with any talkbench generator: align the masked target frames, let the model fill its crops
    (``inputs.target_frames``/``target_lower``; a one-shot model ignores them and draws the whole face),
    warp the crops back and keep them only inside the masks. Returns full frames (T, H, W, 3) uint8."""
    import cv2

    from talkbench.pipelines.face import FaceProcessor, FaceSettings

    if gen.model is None:
        gen.setup()
    frames, masks = np.asarray(masked_frames), np.asarray(masks, bool)
    if frames.ndim != 4 or masks.shape != frames.shape[:3]:
        raise ValueError(f"dub needs (T, H, W, 3) frames and (T, H, W) masks, got {frames.shape} / {masks.shape}")
    n, h, w = frames.shape[:3]
    settings = FaceSettings.model_validate({k: gen.pipeline_cfg.get(k, {}) for k in ("landmarks", "align")})
    align = settings.align
    with FaceProcessor(settings, fps) as face:
        out = face.process(frames, aus=False).as_dict()
    found = np.asarray(out["face_found"], bool)
    if not found.any():
        raise ValueError("no face found in the masked target frames")
    size = gen.image_size or align.crop_size
    mats = _nearest_valid(np.asarray(out["align_matrix"], np.float64), found) * (size / align.crop_size)
    crops = np.stack([cv2.warpAffine(f, m, (size, size), flags=cv2.INTER_AREA) for f, m in zip(frames, mats, strict=True)])
    lower = np.stack([cv2.warpAffine(k.astype(np.uint8) * 255, m, (size, size)) > 127
                      for k, m in zip(masks, mats, strict=True)])
    inputs = GenerationInputs(identity=crops[:1], audio=np.asarray(audio_16k, np.float32).reshape(-1), n_frames=n,
                              fps=fps, pipeline_config=gen.pipeline_cfg, options=gen.options, device=gen.device,
                              target_frames=crops, target_lower=lower)
    gen_crops = np.asarray(unpack(gen.spec.generate(gen.model, inputs)).frames)
    if gen_crops.shape != (n, size, size, 3):
        raise ValueError(f"generate returned {gen_crops.shape}; expected ({n}, {size}, {size}, 3)")
    result = frames.copy()
    for i in range(n):
        back = cv2.warpAffine(gen_crops[i], cv2.invertAffineTransform(mats[i]), (w, h), flags=cv2.INTER_LINEAR)
        result[i][masks[i]] = back[masks[i]]
    return result


def generate_video(checkpoint: str | Path, reference: str | Path | None, audio_path: str | Path, out: str | Path,
                   device: str = "cpu", align: bool = True, **options: Any) -> Path:
    """``talkbench generate``: read the reference image and the audio, write an MP4 with the audio muxed.
    ``reference`` may be None for a model that draws its own target (``spec.reference`` False)."""
    from talkbench.errors import ClipError, TalkbenchError
    from talkbench.media import read_audio, write_video

    gen = CheckpointGenerator(checkpoint, device=device, align=align, **options)
    image = None
    if gen.spec.reference:
        if reference is None:
            raise TalkbenchError("--reference IMAGE is required for this checkpoint")
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
    gen.setup()
    try:
        frames = gen.generate(image, audio, FPS)
    except ValueError as e:
        raise TalkbenchError(str(e)) from None
    return write_video(out, frames, FPS, audio[: round(len(frames) / FPS * SAMPLE_RATE)], SAMPLE_RATE)
