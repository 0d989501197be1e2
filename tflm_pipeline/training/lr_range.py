"""``--lr auto``: a learning-rate range test (Smith, 2017; the fastai "LR finder").

The freshly built model trains for up to ``STEPS`` batches while the rate grows
exponentially from ``START_LR`` to ``END_LR``; each batch's loss is smoothed with an
exponential moving average (``SMOOTHING``, bias-corrected).  The sweep stops once the
smoothed loss exceeds ``DIVERGE_FACTOR`` times its minimum.

The chosen rate is **the rate at the smoothed minimum divided by ``BELOW_MINIMUM``
(10)**: at the minimum the loss is already about to blow up, one order of magnitude
below it is still on the steep descending stretch, and unlike the steepest-slope point
it does not depend on a noisy derivative (which on small sets jumps between batches).
The steepest point is recorded beside it.  The caller restores the model's initial
weights and a fresh optimizer afterwards.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)

START_LR, END_LR = 1e-6, 1.0
STEPS = 200  # batches in the sweep
SMOOTHING = 0.9  # EMA factor of the batch losses
DIVERGE_FACTOR = 4.0  # stop when the smoothed loss is this many times its minimum
MIN_STEPS = 10  # never stop before this many batches
BELOW_MINIMUM = 10.0  # chosen = lr at the smoothed minimum / BELOW_MINIMUM
RULE = "minimum / 10"


@dataclass
class LrRange:
    """The sweep and the rate chosen from it (``lr_range.json`` in the run)."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    chosen: float
    min_loss_lr: float
    steepest_lr: float
    reason: str
    rule: str = RULE
    start: float = START_LR
    end: float = END_LR

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LrRange":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def summary(self) -> dict:
        """What report.json keeps: the choice and why, without the curve."""
        return {"chosen": self.chosen, "rule": self.rule, "reason": self.reason,
                "min_loss_lr": self.min_loss_lr, "steepest_lr": self.steepest_lr,
                "start": self.start, "end": self.end, "steps": len(self.lrs)}


def smooth(losses: list[float], beta: float = SMOOTHING) -> list[float]:
    """Bias-corrected exponential moving average."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** i))
    return out


def choose(lrs: list[float], smoothed: list[float]) -> tuple[float, float, float, str]:
    """(chosen, lr at the minimum, steepest lr, reason) of a sweep."""
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if len(finite) < 3:
        raise ValueError("the sweep has fewer than 3 finite losses")
    best = min(finite, key=lambda i: smoothed[i])
    log_lr = np.log10(np.asarray(lrs, float)[finite])
    slope = np.gradient(np.asarray(smoothed, float)[finite], log_lr)
    upto = [k for k, i in enumerate(finite) if i <= best]
    steepest = lrs[finite[min(upto, key=lambda k: slope[k])]] if upto else lrs[best]
    min_lr = lrs[best]
    chosen = float(min(max(min_lr / BELOW_MINIMUM, lrs[0]), lrs[-1]))
    reason = (f"smoothed loss lowest ({smoothed[best]:.3g}) at lr {min_lr:.2g}; one order of "
              f"magnitude below it is {chosen:.2g} (steepest descent at {steepest:.2g})")
    return chosen, float(min_lr), float(steepest), reason


def lr_range_test(model, x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int = 0,
                  steps: int = STEPS, start: float = START_LR, end: float = END_LR) -> LrRange:
    """Sweep a compiled ``model`` (its weights are changed: restore them afterwards)."""
    from ..tf_env import load

    _, keras, _ = load()
    rng = np.random.default_rng(seed)
    factor = (end / start) ** (1.0 / max(steps - 1, 1))
    order = rng.permutation(len(x))
    lrs, losses = [], []
    best = math.inf
    for step in range(steps):
        lr = start * factor ** step
        keras.backend.set_value(model.optimizer.learning_rate, lr)
        lo = (step * batch_size) % len(x)
        rows = order[lo:lo + batch_size]
        if len(rows) < batch_size:  # wrap around: every batch has the full size
            rows = np.concatenate([rows, order[:batch_size - len(rows)]])
        out = model.train_on_batch(x[rows], y[rows], reset_metrics=True)
        loss = float(out[0] if isinstance(out, (list, tuple)) else out)
        if not math.isfinite(loss):
            break
        lrs.append(lr)
        losses.append(loss)
        current = smooth(losses)[-1]
        best = min(best, current)
        if step >= MIN_STEPS and current > DIVERGE_FACTOR * best:
            break
    smoothed = smooth(losses)
    chosen, min_lr, steepest, reason = choose(lrs, smoothed)
    log.info("lr range test: %d steps from %.0e to %.2g; %s", len(lrs), start, lrs[-1], reason)
    return LrRange(lrs, losses, smoothed, chosen, min_lr, steepest, reason, RULE, start, end)
