"""Adapter submissions: the harness runs a generator object over the task and keeps its videos."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

from talkbench.benchmark.submissions.base import (
    META_KEYS,
    ClipOutput,
    ItemInputs,
    Submission,
    check_frames,
    check_predicted_aus,
)
from talkbench.benchmark.tasks import TaskManifest
from talkbench.errors import ClipError, TalkbenchError

#: the methods an adapter defines (at least one); ``module:Class`` targets are checked for them statically
ADAPTER_METHODS = ("generate", "generate_batch", "generate_item")


class AdapterSubmission(Submission):
    """Runs a generator object over the task: ``generate(reference_image, audio_16k, fps) -> frames``.

    An adapter that also has ``generate_with_aus`` (same arguments, returning an object with ``frames``
    and ``predicted_aus``, AU -> per-frame intensities, e.g. ``models.generate.Generated``) is called
    through it, so its Audio-to-AU prediction is scored against the AUs seen on its video.
    """

    def __init__(self, obj: Any, spec: str, name: str | None, identity: dict[str, Any],
                 length_tolerance: int = 1):
        if not any(callable(getattr(obj, m, None)) for m in ADAPTER_METHODS):
            raise TalkbenchError(f"submission {spec!r}: {type(obj).__name__} has no generate() method")
        self.obj = obj
        self.length_tolerance = length_tolerance
        meta = {k: str(getattr(obj, k)) for k in META_KEYS if isinstance(getattr(obj, k, None), str | int | float)}
        super().__init__(spec=spec, name=name or meta.get("model") or spec, identity=identity, meta=meta)

    def setup(self, task: TaskManifest) -> None:
        setup = getattr(self.obj, "setup", None)
        if callable(setup):
            params = inspect.signature(setup).parameters
            setup(task) if params else setup()

    def outputs(self, inputs: Iterator[ItemInputs]) -> Iterator[ClipOutput]:
        batch_fn = getattr(self.obj, "generate_batch", None)
        size = int(getattr(self.obj, "batch_size", 1) or 1) if callable(batch_fn) else 1
        if callable(getattr(self.obj, "personalize", None)):
            size = 1  # personalised per clip: each generate follows its own clip's personalize()
        batch: list[ItemInputs] = []
        for inp in inputs:
            batch.append(inp)
            if len(batch) >= size:
                yield from self._run(batch, batch_fn if size > 1 else None)
                batch = []
        if batch:
            yield from self._run(batch, batch_fn if size > 1 else None)

    def _run(self, batch: list[ItemInputs], batch_fn: Callable | None) -> Iterator[ClipOutput]:
        if batch_fn is not None:
            try:
                results = list(batch_fn([b.reference_image for b in batch], [b.item.audio for b in batch],
                                        batch[0].item.fps))
                if len(results) != len(batch):
                    raise ValueError(f"generate_batch returned {len(results)} outputs for {len(batch)} inputs")
            except Exception as e:  # noqa: BLE001 - the adapter's failure is recorded per clip
                results = [ClipError("generate_failed", f"{type(e).__name__}: {e}")] * len(batch)
        else:
            results = []
            for b in batch:
                try:
                    self._personalize(b)
                    results.append(self.generate_one(b))
                except ClipError as e:
                    results.append(e)
                except Exception as e:  # noqa: BLE001
                    results.append(ClipError("generate_failed", f"{type(e).__name__}: {e}"))
        for b, r in zip(batch, results, strict=True):
            out = ClipOutput(b)
            if isinstance(r, ClipError):
                out.error = r
            else:
                aus = getattr(r, "predicted_aus", None)  # generate_with_aus: frames + the model's own AUs
                r = getattr(r, "frames", r)
                try:
                    out.info["n_frames_submitted"] = int(len(r))
                    out.frames = check_frames(r, b.item.clip.n_frames, self.length_tolerance)
                    if aus is not None:
                        out.predicted_aus = check_predicted_aus(aus, len(r), b.item.clip.n_frames)
                        out.info["predicted_aus"] = ",".join(sorted(out.predicted_aus))
                except ClipError as e:
                    out.error = e
                except TypeError as e:
                    out.error = ClipError("bad_output", f"{type(e).__name__}: {e}")
            yield out

    def _personalize(self, inp: ItemInputs) -> None:
        """Personalised tasks: ``personalize(frames, audio)`` with the clip's fine-tuning material first,
        when the adapter has it (one without it is scored as a non-personalised baseline)."""
        fn = getattr(self.obj, "personalize", None)
        if inp.personal_frames is not None and callable(fn):
            fn(inp.personal_frames, inp.item.personal_audio)

    def generate_one(self, inp: ItemInputs) -> Any:
        dub = getattr(self.obj, "dub", None)
        if inp.dubbing_frames is not None and callable(dub):  # dubbing task, a model that inpaints
            return dub(inp.dubbing_frames, inp.dubbing_mask, inp.item.audio, inp.item.fps)
        with_aus = getattr(self.obj, "generate_with_aus", None)  # optional: -> .frames, .predicted_aus
        if callable(with_aus):
            return with_aus(inp.reference_image, inp.item.audio, inp.item.fps)
        return self.obj.generate(inp.reference_image, inp.item.audio, inp.item.fps)
