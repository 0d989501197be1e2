"""Learning-rate schedules for float training (``--schedule``), stepped per batch.

``constant`` keeps the rate (and :func:`~tflm_pipeline.training.fit.fit` halves it on a
plateau); ``cosine`` anneals from the peak rate to ``FINAL_FRACTION`` of it over the
planned epochs; ``onecycle`` warms up linearly from ``peak / ONECYCLE_DIV`` to the peak
over the first ``WARMUP_SHARE`` of the steps, then anneals like cosine (Smith & Topin,
2017).  The rate is a pure function of the global step, so a resumed run continues on
the same curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import SCHEDULES  # the names --schedule takes

FINAL_FRACTION = 1e-3  # cosine and one-cycle end at this share of the peak rate
WARMUP_SHARE = 0.25  # one-cycle: share of the steps spent warming up
ONECYCLE_DIV = 25.0  # one-cycle: the rate starts at peak / ONECYCLE_DIV


@dataclass(frozen=True)
class LrSchedule:
    """A schedule by its ``--schedule`` name and its peak (starting) rate."""

    kind: str
    peak_lr: float

    def lr(self, step: int, total_steps: int) -> float:
        """The rate at global ``step`` (0-based) of ``total_steps``."""
        t = min(max(step, 0) / max(total_steps - 1, 1), 1.0)
        low = self.peak_lr * FINAL_FRACTION
        if self.kind == "constant":
            return self.peak_lr
        if self.kind == "cosine":
            return low + (self.peak_lr - low) * 0.5 * (1 + math.cos(math.pi * t))
        if self.kind == "onecycle":
            start = self.peak_lr / ONECYCLE_DIV
            if t < WARMUP_SHARE:
                return start + (self.peak_lr - start) * t / WARMUP_SHARE
            u = (t - WARMUP_SHARE) / (1 - WARMUP_SHARE)
            return low + (self.peak_lr - low) * 0.5 * (1 + math.cos(math.pi * u))
        raise ValueError(f"unknown schedule {self.kind!r}; one of {', '.join(SCHEDULES)}")


def schedule_callback(schedule: LrSchedule, epochs: int, steps_per_epoch: int):
    """A Keras callback setting the optimizer's rate before every training batch."""
    from ..tf_env import load

    _, keras, _ = load()
    total = epochs * steps_per_epoch

    class ScheduleCallback(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch  # Keras counts from initial_epoch on resume

        def on_train_batch_begin(self, batch, logs=None):
            lr = schedule.lr(self.epoch * steps_per_epoch + batch, total)
            keras.backend.set_value(self.model.optimizer.learning_rate, lr)

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["lr"] = float(keras.backend.get_value(self.model.optimizer.learning_rate))

    return ScheduleCallback()
