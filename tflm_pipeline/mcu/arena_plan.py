"""Write an offline memory plan into a model when it shrinks the arena on every TFLM
release tflmp sizes for.

The plan (:mod:`tflm_pipeline.tflite.offline_plan`) fixes the tensors' offsets; each
build's kernels still request their own scratch buffers, which TFLM fits around them.
So the plan is tuned for one release's kernels and kept only if no release's kernels
(CMSIS-NN, ESP-NN, reference, of 2023 and 2026) then need more activation memory than
with TFLM's greedy plan.  A model with an op whose kernel's scratch buffers are not in
the release table is left alone: its plan could not be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..tflite import offline_plan
from ..tflite.model_info import ModelInfo, read_model
from .arena import scratch_buffers
from .releases import DEFAULT_RELEASE, releases


@dataclass(frozen=True)
class PlanOutcome:
    applied: bool
    reason: str  # one line: what it saved, or why the model keeps TFLM's greedy plan
    plan: offline_plan.OfflinePlan | None = None

    @property
    def saved_bytes(self) -> int:
        return self.plan.saved_bytes if self.applied else 0

    def to_dict(self) -> dict:
        return {"applied": self.applied, "reason": self.reason,
                **(self.plan.to_dict() if self.plan else {})}


def plan_model(model: bytes, release: str = DEFAULT_RELEASE) -> tuple[bytes, PlanOutcome]:
    """``model`` with an offline plan when it saves bytes, tuned for ``release``."""
    outcome = decide(read_model(model), release)
    return (offline_plan.write(model, outcome.plan.offsets) if outcome.applied else model,
            outcome)


def decide(info: ModelInfo, release: str = DEFAULT_RELEASE) -> PlanOutcome:
    """The best plan for ``info`` tuned for ``release``, and whether to write it."""
    if info.subgraphs != 1:
        return PlanOutcome(False, "models with several subgraphs keep TFLM's plan")
    scratch, unknown = scratch_buffers(info, release)
    if unknown:
        names = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3
                                          else "")
        return PlanOutcome(False, f"the scratch buffers of {names} are not in tflmp's table "
                                  f"for {release}; TFLM's plan kept")
    others = []
    for name in releases():
        if name != release:
            s, unknown = scratch_buffers(info, name)
            if not unknown:
                others.append(s)
    plan = offline_plan.compute(info, scratch, others)
    if plan.worthwhile:
        return PlanOutcome(True, f"saves {plan.saved_bytes:,} B of activations "
                                 f"({plan.greedy_bytes:,} -> {plan.planned_bytes:,}; "
                                 f"lower bound {plan.lower_bound:,})", plan)
    why = ("TFLM's greedy plan already meets the lower bound" if plan.saved_bytes == 0
           and plan.greedy_bytes == plan.lower_bound else
           "no plan found that saves bytes on every release")
    return PlanOutcome(False, why, plan)
