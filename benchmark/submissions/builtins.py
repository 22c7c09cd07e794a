"""Built-in reference submissions that make the metrics testable (upper bound, no motion, out of sync)."""

from __future__ import annotations

from typing import Any

import numpy as np

from talkbench.benchmark.submissions.adapter import AdapterSubmission
from talkbench.benchmark.submissions.base import ItemInputs
from talkbench.benchmark.tasks import TaskManifest
from talkbench.errors import TalkbenchError
from talkbench.registry import Registry

#: name -> factory(**options) of objects with ``generate_item(inputs) -> frames``
BUILTINS: Registry[type] = Registry("built-in submission")


@BUILTINS.register("ground-truth")
class GroundTruth:
    """The real video: the upper bound of every full-reference metric."""

    version = "1"

    def generate_item(self, inp: ItemInputs) -> np.ndarray:
        if inp.ground_truth is None:
            raise TalkbenchError("builtin:ground-truth needs a paired task (unpaired tasks have no ground truth)")
        return inp.ground_truth()


@BUILTINS.register("static-frame")
class StaticFrame:
    """The reference frame repeated for the whole clip: a face that never moves."""

    version = "1"

    def generate_item(self, inp: ItemInputs) -> np.ndarray:
        return np.repeat(inp.reference_image[None], inp.item.clip.n_frames, axis=0)


@BUILTINS.register("shifted")
class Shifted:
    """Ground-truth frames delayed by ``k`` frames against the audio (video lags audio for k > 0).

    Frame t shows ground-truth frame t - k; the first k frames repeat frame 0 (for k < 0 the last
    frames repeat the final frame), so the length stays the task's.
    """

    version = "1"

    def __init__(self, k: int = 5):
        self.k = int(k)

    def generate_item(self, inp: ItemInputs) -> np.ndarray:
        if inp.ground_truth is None:
            raise TalkbenchError("builtin:shifted needs a paired task (it delays the ground truth)")
        gt = inp.ground_truth()
        idx = np.clip(np.arange(len(gt)) - self.k, 0, len(gt) - 1)
        return gt[idx]


@BUILTINS.register("masked-input")
class MaskedInput:
    """Dubbing tasks: the adapter's input returned as is (the lower face left black): the floor."""

    version = "1"

    def generate_item(self, inp: ItemInputs) -> np.ndarray:
        if inp.dubbing_frames is None:
            raise TalkbenchError("builtin:masked-input needs a dubbing task")
        return inp.dubbing_frames


class BuiltinSubmission(AdapterSubmission):
    def generate_one(self, inp: ItemInputs) -> Any:
        return self.obj.generate_item(inp)

    def setup(self, task: TaskManifest) -> None:
        if not task.paired and not isinstance(self.obj, StaticFrame):
            raise TalkbenchError(f"{self.spec} needs a paired task; {task.ref} is {task.kind}")
