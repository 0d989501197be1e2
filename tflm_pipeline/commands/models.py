"""``tflmp models``: the model zoo, with each model's task, reference shape, parameters
and MACs."""

from __future__ import annotations

from ..models import MODELS, ZooEntry, describe


def list_models() -> list[ZooEntry]:
    """Every zoo model, as its module states it."""
    return [describe(name) for name in MODELS]
