"""K folds over a dataset's train+val pool for ``tflmp train --cv K`` (the test split
stays held out, as in every run).

:func:`plan_folds` is scikit-learn's seeded ``StratifiedKFold`` for class labels
(``KFold`` for float targets), or ``StratifiedGroupKFold`` / ``GroupKFold`` when the
samples have groups (a session, subject or file per sample): then a group's samples
are never both in a fold's training part and its held-out part.  Inside each fold's
training part a validation share is carved by :func:`~.splits.plan_split` (early
stopping and the int8 choice never see the held-out part).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import TflmpError
from .splits import MIN_TEST_PER_CLASS, plan_split

log = logging.getLogger(__name__)


@dataclass
class Fold:
    """Indices into the pool: the fold's training part, its validation part (carved from
    training) and the held-out part it is scored on."""

    train: np.ndarray
    val: np.ndarray
    held_out: np.ndarray


@dataclass
class FoldPlan:
    k: int
    folds: list[Fold]
    grouped: bool  # whole groups per part
    method: str  # which scikit-learn splitter, in words
    notes: list[str] = field(default_factory=list)

    def to_dict(self, ids=None, what: str = "index into train+val") -> dict:
        """``folds.json``: the sample ids (``ids[i]``, default ``i``) of each fold's parts."""
        def name(p):
            return [int(i) for i in p] if ids is None else [ids[i] for i in p]
        return {"k": self.k, "grouped": self.grouped, "method": self.method, "id": what,
                "notes": list(self.notes),
                "folds": [{"train": name(f.train), "val": name(f.val),
                           "held_out": name(f.held_out)} for f in self.folds]}


def plan_folds(y, k: int, seed: int, val_fraction: float, groups=None,
               where: str = "--cv") -> FoldPlan:
    """``k`` folds over the pool labels ``y`` (integers: stratified; floats: plain), whole
    ``groups`` per part when given.  Raises a one-line TflmpError when ``k`` is too large
    for the class or group counts."""
    y = np.asarray(y)
    n = len(y)
    classes = np.issubdtype(y.dtype, np.integer)
    if k < 2:
        raise TflmpError(f"--cv must be 2 or more folds, got {k}")
    if k > n:
        raise TflmpError(f"--cv {k} asks for more folds than the {n} train+val samples; "
                         f"use --cv {n} or fewer")
    notes: list[str] = []
    if groups is not None:
        groups = np.asarray(groups)
        names = np.unique(groups)
        if k > len(names):
            raise TflmpError(f"--cv {k} needs at least {k} groups but the train+val samples "
                             f"come from {len(names)} group(s); use --cv {len(names)} or "
                             "fewer, or --group-column none to fold by sample")
        if classes:
            from sklearn.model_selection import StratifiedGroupKFold
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
            method = f"StratifiedGroupKFold, {len(names)} groups"
            for label in np.unique(y):
                held = len(np.unique(groups[y == label]))
                if held < k:
                    notes.append(f"{where}: class {label} is in {held} group(s), fewer than "
                                 f"{k} folds: some folds hold none of it out")
        else:
            from sklearn.model_selection import GroupKFold
            splitter = GroupKFold(k)
            method = f"GroupKFold, {len(names)} groups"
        pairs = list(splitter.split(np.zeros(n), y, groups))
    elif classes:
        labels, counts = np.unique(y, return_counts=True)
        if counts.min() < k:
            low = labels[np.argmin(counts)]
            raise TflmpError(f"--cv {k}: class {low} has {counts.min()} train+val sample(s), "
                             f"fewer than the {k} folds, so a fold would hold none of it "
                             f"out; use --cv {max(2, counts.min())} or fewer, or add "
                             "samples of it")
        from sklearn.model_selection import StratifiedKFold
        splitter, method = StratifiedKFold(k, shuffle=True, random_state=seed), "StratifiedKFold"
        pairs = list(splitter.split(np.zeros(n), y))
    else:
        from sklearn.model_selection import KFold
        splitter, method = KFold(k, shuffle=True, random_state=seed), "KFold"
        pairs = list(splitter.split(np.zeros(n)))
    folds = []
    for i, (rest, held) in enumerate(pairs):
        inner = plan_split(y[rest], (1 - val_fraction, val_fraction), seed + i,
                           f"{where} fold {i + 1}",
                           groups[rest] if groups is not None else None)
        tr, va = inner.parts
        folds.append(Fold(np.sort(rest[tr]), np.sort(rest[va]), np.sort(held)))
    for line in notes:
        log.info("%s", line)
    return FoldPlan(k, folds, groups is not None, method, notes)


def small_test_split(dataset, task: str) -> str | None:
    """A one-line warning when a classification test split holds fewer than
    MIN_TEST_PER_CLASS samples of some class (its score then swings by several points
    from one split to the next), suggesting --cv; None otherwise or when the split's
    own note already says so."""
    y = dataset.raw("test")[1]
    if task != "classification" or not np.issubdtype(y.dtype, np.integer) or not len(y):
        return None
    if any("(--cv)" in note for note in dataset.notes):
        return None
    counts = np.bincount(y, minlength=dataset.preprocessing.num_classes)
    if counts.min() >= MIN_TEST_PER_CLASS:
        return None
    return (f"{dataset.name}: the test split has {len(y)} samples, as few as {counts.min()} "
            f"per class (under {MIN_TEST_PER_CLASS}): its score means little; add data or "
            "cross-validate with --cv 5")
