"""``tflmp targets``: the firmware targets ``tflmp firmware`` writes projects for."""

from __future__ import annotations

from ..mcu.targets import Target, targets


def list_targets() -> list[Target]:
    """Every target of ``firmware/targets.yaml``."""
    return list(targets().values())
