"""Learning-rate schedules for float training (``--schedule``), stepped per batch
inside the optimizer.

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

import numpy as np

from ..config import SCHEDULES  # the names --schedule takes

FINAL_FRACTION = 1e-3  # cosine and one-cycle end at this share of the peak rate
WARMUP_SHARE = 0.25  # one-cycle: share of the steps spent warming up
ONECYCLE_DIV = 25.0  # one-cycle: the rate starts at peak / ONECYCLE_DIV


@dataclass(frozen=True)
class LrSchedule:
    """A schedule by its ``--schedule`` name and its peak (starting) rate."""

    kind: str
    peak_lr: float

    @property
    def per_step(self) -> bool:
        """Whether the rate changes with the step (else it is constant)."""
        return self.kind != "constant"

    def lr(self, step: int, total_steps: int) -> float:
        """The rate at global ``step`` (0-based) of ``total_steps``."""
        return float(self._rate(np.float64(step), total_steps, np))

    def keras_rate(self, total_steps: int):
        """The schedule as a Keras ``LearningRateSchedule`` of the optimizer's step count:
        the optimizer computes the rate in its own graph, so training needs no per-batch
        Python callback (one cost 20 % of an epoch of LeNet on MNIST), and a resumed run,
        whose restored optimizer carries its step count, continues on the same curve."""
        from ..tf_env import load

        tf, keras, _ = load()
        schedule = self

        class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
            def __call__(self, step):  # in float64, as :meth:`lr`; the optimizer's is float32
                rate = schedule._rate(tf.cast(step, tf.float64), total_steps, tf)
                return tf.cast(rate, tf.float32)

            def get_config(self):
                return {"kind": schedule.kind, "peak_lr": schedule.peak_lr,
                        "total_steps": total_steps}

        return StepSchedule()

    def _rate(self, step, total_steps: int, xp):
        """The one formula, on a Python/numpy step (``xp`` numpy) or a tensor (``xp`` tf)."""
        t = xp.minimum(xp.maximum(step, 0.0) / max(total_steps - 1, 1), 1.0)
        peak = self.peak_lr
        low = peak * FINAL_FRACTION
        if self.kind == "constant":
            return t * 0.0 + peak
        if self.kind == "cosine":
            return low + (peak - low) * 0.5 * (1 + xp.cos(math.pi * t))
        if self.kind == "onecycle":
            start = peak / ONECYCLE_DIV
            warm = start + (peak - start) * t / WARMUP_SHARE
            u = (t - WARMUP_SHARE) / (1 - WARMUP_SHARE)
            anneal = low + (peak - low) * 0.5 * (1 + xp.cos(math.pi * u))
            return xp.where(t < WARMUP_SHARE, warm, anneal)
        raise ValueError(f"unknown schedule {self.kind!r}; one of {', '.join(SCHEDULES)}")


def rate_logger():
    """A Keras callback adding the optimizer's current rate to each epoch's logs (the
    history's ``lr`` column), with no per-batch hook."""
    from ..tf_env import load

    _, keras, _ = load()

    class RateLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["lr"] = float(keras.backend.get_value(self.model.optimizer.learning_rate))

    return RateLogger()
