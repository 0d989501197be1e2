"""Seeded train/val/test splits shared by every loader: stratified, group-aware, and
working on any dataset size.

:func:`plan_split` is the one splitter.  It keeps every class in every split where the
counts allow (scikit-learn's stratified split when each class has enough samples for
the asked shares, else a per-class allocation that gives each class at least one sample
per split), and otherwise says in one line what it did instead.  With ``groups`` (a
session, subject, speaker or file per sample) whole groups go to one split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import TflmpError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
MIN_TEST_PER_CLASS = 5  # below this the test score means little: the run says so


@dataclass
class SplitPlan:
    """Index arrays per split (train, val[, test]) and the one-line notes on how."""

    parts: tuple[np.ndarray, ...]
    notes: list[str] = field(default_factory=list)  # where it differs from the request
    facts: list[str] = field(default_factory=list)  # how it was done (logged as info)


def plan_split(y, fractions, seed: int, where, groups=None) -> SplitPlan:
    """Split ``len(y)`` samples by ``fractions`` (train, val[, test]; any positive scale).

    Classification labels (integers) are stratified; float targets are not.  ``groups``
    (one hashable per sample) keeps every group in one split.  Notes (also logged) say
    where the result differs from the request; the loaders add them to the dataset's
    notes, which report.json keeps.
    """
    y = np.asarray(y)
    fractions = np.asarray(fractions, np.float64) / float(sum(fractions))
    n = len(y)
    sizes = _sizes(n, fractions, where)
    rng = np.random.default_rng(seed)
    classes = np.issubdtype(y.dtype, np.integer)
    if groups is not None and len(np.unique(groups)) < len(fractions):
        plan = plan_split(y, fractions, seed, where)  # logs its own notes
        plan.notes.insert(0, f"{where}: only {len(np.unique(groups))} group(s) for "
                             f"{len(fractions)} splits: split by sample instead, so one "
                             "group's samples are in several splits; add recordings")
        log.info("%s", plan.notes[0])
        return plan
    if groups is not None:
        plan = _group_split(y, np.asarray(groups), fractions, rng, where, classes)
    elif not classes:  # float targets: scikit-learn's seeded split, as runs always had
        plan = SplitPlan(_sklearn_split(y, sizes, seed, stratify=False))
    else:
        plan = _class_split(y, fractions, sizes, seed, rng, where)
    if classes:
        plan.notes += _coverage_notes(y, plan.parts, where, groups is not None)
    for line in plan.facts + plan.notes:  # info: a one-line error stays alone on stderr
        log.info("%s", line)
    return plan


def split_two(x, y, val_fraction: float, seed: int, where="data", groups=None, notes=None):
    """(x_train, y_train, x_val, y_val): ``val_fraction`` of the samples for validation;
    the plan's notes are appended to ``notes`` when given."""
    if not 0.0 < val_fraction < 1.0:
        raise TflmpError(f"--val-split must be between 0 and 1, got {val_fraction}")
    tr, va = split_indices(y, seed, None, where, val_fraction, groups, notes)
    return x[tr], y[tr], x[va], y[va]


def split_three(x, y, split, seed: int, where="data", groups=None, notes=None):
    """(x_train, y_train, x_val, y_val, x_test, y_test) in the ratio ``split`` (7:2:1)."""
    if len(split) != 3 or min(split) <= 0:
        raise TflmpError(f"--split needs three positive parts like 7:2:1, got {split}")
    tr, va, te = split_indices(y, seed, split, where, None, groups, notes)
    return x[tr], y[tr], x[va], y[va], x[te], y[te]


def split_indices(y, seed: int, split, where, val_fraction: float | None = None,
                  groups=None, notes: list | None = None):
    """Indices of train/val/test by ``split`` (or train/val by ``val_fraction``)."""
    fractions = split if val_fraction is None else (1 - val_fraction, val_fraction)
    plan = plan_split(y, fractions, seed, where, groups)
    if notes is not None:
        notes.extend(plan.facts + plan.notes)
    return plan.parts


def split_arrays(x, y, seed: int, split, where, groups=None, notes=None):
    """The six arrays of :func:`split_three`, by :func:`split_indices`."""
    tr, va, te = split_indices(y, seed, split, where, None, groups, notes)
    return x[tr], y[tr], x[va], y[va], x[te], y[te]


def ids_of(parts, what: str, ids=None) -> dict:
    """``splits.json``'s content: the sample ids of each split (``ids[i]``, default the
    index ``i``) and what an id is."""
    out = {"id": what}
    for name, p in zip(SPLIT_NAMES, parts):
        out[name] = [int(i) for i in p] if ids is None else [ids[i] for i in p]
    return out


def ratio(split) -> str:
    """(7.0, 2.0, 1.0) -> '7:2:1'."""
    return ":".join(f"{p:g}" for p in split)


def split_note(split, seed: int) -> str:
    return f"split {ratio(split)} stratified, seed {seed}"


def standardize(x: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) with ``x * scale + offset`` of zero mean and unit std over ``axis``."""
    mean, std = np.nanmean(x, axis=axis, dtype=np.float64), np.nanstd(x, axis=axis,
                                                                       dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return 1.0 / std, -mean / std


# --- how -----------------------------------------------------------------------------------

def _sizes(n: int, fractions: np.ndarray, where) -> list[int]:
    """Samples per split: at least one in each held-out split, the rest in train."""
    held = [max(1, round(n * f)) for f in fractions[1:]]
    if n - sum(held) < 1:
        raise TflmpError(f"{where}: {n} samples are too few for {len(fractions)} splits; "
                         "add data")
    return [n - sum(held), *held]


def _cut(order: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, ...]:
    """``order`` cut into train, val[, test] of ``sizes`` (held-out splits taken first)."""
    parts, start = [], 0
    for size in sizes[1:]:
        parts.append(np.sort(order[start:start + size]))
        start += size
    return (np.sort(order[start:]), *parts)


def _class_split(y, fractions, sizes, seed, rng, where) -> SplitPlan:
    labels, counts = np.unique(y, return_counts=True)
    if min(sizes[1:]) >= len(labels) and counts.min() >= 2:
        try:
            parts = _sklearn_split(y, sizes, seed)
        except ValueError:
            parts = None
        # kept when it put every class with enough samples into every split
        if parts is not None and all(len(np.setdiff1d(labels[counts >= len(sizes)], y[p])) == 0
                                     for p in parts):
            return SplitPlan(parts)
    # too few per class for the asked shares: each class gets one sample per split first
    parts = [[] for _ in fractions]
    for label, count in zip(labels, counts):
        members = rng.permutation(np.flatnonzero(y == label))
        take = _per_class(count, fractions)
        start = 0
        for k in ((1, 2, 0) if len(fractions) == 3 else (1, 0)):
            parts[k].extend(members[start:start + take[k]])
            start += take[k]
    result = tuple(np.sort(np.asarray(p, np.int64)) for p in parts)
    shares = ":".join(f"{len(p) / len(y):.0%}" for p in result)
    notes = [f"{where}: {len(y)} samples in {len(labels)} classes are too few for the asked "
             f"{ratio(np.round(fractions * 100, 1))} (%) split stratified by share; split "
             f"per class instead, at least one sample of each class per split "
             f"(train:val{':test' if len(result) == 3 else ''} = {shares})"]
    return SplitPlan(result, notes)


def _per_class(count: int, fractions) -> list[int]:
    """How many of one class's ``count`` samples each split gets: one per held-out split
    first (train keeps at least one), then by share."""
    take = [0] * len(fractions)
    remaining = count - 1  # train keeps one
    for k in range(1, len(fractions)):
        if remaining > 0:
            take[k] = max(1, round(count * fractions[k]))
            take[k] = min(take[k], remaining)
            remaining -= take[k]
    take[0] = count - sum(take[1:])
    return take


def _sklearn_split(y, sizes, seed, stratify: bool = True):
    """scikit-learn's seeded split (stratified by ``y`` unless ``stratify`` is False): test
    first, then validation from the rest, each in the order scikit-learn gives (the order
    runs have always trained in: a run made before the group-aware splitter gets the same
    samples in the same order)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if len(sizes) == 2:
        tr, va = train_test_split(idx, test_size=sizes[1], random_state=seed,
                                  stratify=y if stratify else None)
        return tr, va
    rest, te = train_test_split(idx, test_size=sizes[2], random_state=seed,
                                stratify=y if stratify else None)
    tr, va = train_test_split(rest, test_size=sizes[1], random_state=seed,
                              stratify=y[rest] if stratify else None)
    return tr, va, te


def _group_split(y, groups, fractions, rng, where, classes) -> SplitPlan:
    """Whole groups per split: groups in a seeded order, each to the split furthest below
    its share (preferring the split it brings new classes to), the largest to train."""
    names, group_of = np.unique(groups, return_inverse=True)
    k = len(fractions)
    n = len(y)
    order = rng.permutation(len(names))
    sizes = np.bincount(group_of, minlength=len(names))
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, seeded ties
    target = fractions * n
    filled = np.zeros(k)
    label_ids = np.unique(y, return_inverse=True)[1] if classes else np.zeros(n, np.int64)
    n_labels = label_ids.max() + 1
    have = np.zeros((k, n_labels))
    assign = np.empty(len(names), np.int64)
    for rank, g in enumerate(order):
        members = group_of == g
        if rank < k:  # every split gets a group: train the largest
            split = rank
        else:
            new_classes = ((np.bincount(label_ids[members], minlength=n_labels) > 0)
                           & (have == 0)).sum(axis=1)
            deficit = (target - filled) / target
            if deficit.max() > 0:  # below its share: the one gaining most classes, then size
                split = int(np.lexsort((-deficit, -np.where(deficit > 0, new_classes, -1)))[0])
            else:
                split = int(np.argmax(deficit))
        assign[g] = split
        filled[split] += members.sum()
        have[split] += np.bincount(label_ids[members], minlength=n_labels)
    per_sample = assign[group_of]
    parts = tuple(np.flatnonzero(per_sample == s) for s in range(k))
    count = [len(np.unique(group_of[p])) for p in parts]
    facts = [f"{where}: split by group, {len(names)} groups -> "
             + ", ".join(f"{name} {c} ({len(p)} samples)"
                         for name, c, p in zip(SPLIT_NAMES, count, parts))
             + "; no group is in two splits"]
    return SplitPlan(parts, facts=facts)


def _coverage_notes(y, parts, where, grouped: bool = False) -> list[str]:
    """Which classes a split lacks, and whether the test split is too small to mean much."""
    notes = []
    labels = np.unique(y)
    for name, p in zip(SPLIT_NAMES, parts):
        lacking = np.setdiff1d(labels, y[p])
        if len(lacking):
            shown = ", ".join(str(v) for v in lacking[:8]) + (" ..." if len(lacking) > 8 else "")
            why = ("are in no group that went to" if grouped
                   else "have too few samples to appear in")
            notes.append(f"{where}: class(es) {shown} {why} {name}; add "
                         f"{'recordings' if grouped else 'samples'} of them")
    if len(parts) == 3:
        test = y[parts[2]]
        per_class = np.bincount(np.searchsorted(labels, test), minlength=len(labels))
        if per_class.min() < MIN_TEST_PER_CLASS:
            notes.append(f"{where}: the test split has {len(test)} samples, as few as "
                         f"{per_class.min()} per class: its score means little; add data or "
                         "use cross-validation (--cv)")
    return notes
