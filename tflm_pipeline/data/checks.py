"""Data checks: what a dataset holds that can make a score lie, in plain NumPy.

* exact duplicates within and across splits: sha256 of each raw sample's bytes (dtype,
  shape and values); a copy of a train sample in val or test is a leak.
* near-duplicates across splits (images and windows; windows first lose each window's
  channel means and are scaled by each channel's std, so they compare by waveform):
  every sample is reduced to a coarse view (block means to at most 7x7 per image
  channel, or at most 16 time steps per window channel), centred and scaled to unit
  length; each val/test sample's nearest earlier-split sample by that view (cosine, one
  matrix product in chunks) is a candidate when the cosine is at least ``COARSE_MIN``; it
  is a near-duplicate when the full-resolution samples correlate at least ``NEAR_MIN``
  (Pearson) and are not exact copies.  Only the nearest candidate is verified: a lower
  bound.  (MNIST: no pair >= 0.99, 36 >= 0.98; Fashion-MNIST: 62 test images >= 0.99,
  all with their train twin's label; see docs/BENCHMARKS.md.)
* class counts per split and the train imbalance ratio (largest / smallest class).
* missing values (NaN) per channel; outliers per channel by the robust z-score
  ``0.6745 (v - median) / MAD`` beyond ``OUTLIER_Z`` (Iglewicz and Hoaglin; with MAD 0
  the mean absolute deviation x 1.2533 stands in); constant channels.  Sensor CSVs are
  checked on their rows, other windows on all their time steps; images have no
  per-channel outlier check.

Policies (:func:`apply_policies`, run by ``load_dataset`` so every command sees the same
data): ``duplicates`` drop (default: val/test copies of an earlier split's samples are
removed) / keep / error, and ``subset`` (at most N samples per split, stratified).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np

from ..errors import TflmpError
from .dataset import SPLITS, Dataset

log = logging.getLogger(__name__)

DUPLICATE_POLICIES = ("drop", "keep", "error")
COARSE_MIN = 0.95  # cosine of the coarse views for a near-duplicate candidate
NEAR_MIN = 0.99  # Pearson correlation of the full samples for a near-duplicate
OUTLIER_Z = 3.5
EXAMPLES = 5  # examples (sample ids) kept per finding
_PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))
_CHUNK = 256  # query rows per matrix product
_REF_CHUNK = 2048  # reference rows per matrix product
_VIEW_CHUNK = 1024  # samples per coarse-view computation (bounds memory: 96x96x3 -> 113 MB)


@dataclass
class DataChecks:
    """The findings of :func:`check_dataset`, as ``report.json``'s ``data_checks``."""

    samples: dict[str, int]
    class_counts: dict[str, list[int]] | None
    imbalance_ratio: float | None
    duplicates_within: dict[str, int]  # extra copies inside one split
    label_conflicts: int  # copies of one sample carrying different labels
    duplicates_across: dict[str, int]  # "train/test": test samples copying a train sample
    near_duplicates_across: dict[str, int]
    examples: dict[str, list] = field(default_factory=dict)
    channels: list[str] = field(default_factory=list)
    missing: dict[str, int] = field(default_factory=dict)
    outliers: dict[str, int] = field(default_factory=dict)
    constant_channels: list[str] = field(default_factory=list)
    groups_shared: int = 0  # groups found in two splits
    shared_rows: dict = field(default_factory=dict)  # overlapping windows across splits
    policy: dict = field(default_factory=dict)  # what apply_policies did
    method: dict = field(default_factory=dict)

    @property
    def leaks(self) -> list[str]:
        """One line per leak across splits (exact or near copies, shared groups)."""
        out = []
        found = self.policy.get("duplicates_found", {})
        for pair in (f"{a}/{b}" for a, b in _PAIRS):
            n = found.get(pair, self.duplicates_across.get(pair, 0))
            if n:
                held = pair.split("/")[1]
                dropped = self.policy.get("dropped", {}).get(pair, 0)
                what = f"dropped from {held}" if dropped else "kept (--duplicates keep)"
                out.append(f"{n} {held} sample(s) are exact copies of {pair.split('/')[0]} "
                           f"samples: {what}")
        for pair, n in self.near_duplicates_across.items():
            if n:
                a, b = pair.split("/")
                out.append(f"{n} {b} sample(s) are near-duplicates of {a} samples "
                           f"(correlation >= {NEAR_MIN:g}); examples in data_checks")
        for pair, n in self.shared_rows.items():
            if n:
                a, b = pair.split("/")
                out.append(f"{n} {b} window(s) share rows with {a} windows (--stride < "
                           "--window); a group column or --stride = --window keeps them apart")
        if self.groups_shared:
            out.append(f"{self.groups_shared} group(s) are in more than one split")
        return out

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["leaks"] = self.leaks
        return d


def check_dataset(ds: Dataset, *, near: bool = True) -> DataChecks:
    """Every check of this module on ``ds`` (``near``: also the near-duplicate search)."""
    ids = ds.split_ids()
    xs = {s: getattr(ds, f"x_{s}") for s in SPLITS}
    ys = {s: getattr(ds, f"y_{s}") for s in SPLITS}
    keys = {s: sample_keys(xs[s]) for s in SPLITS}
    examples: dict[str, list] = {}
    within, conflicts = {}, 0
    for s in SPLITS:
        _, first, counts = np.unique(keys[s], return_index=True, return_counts=True)
        within[s] = int((counts - 1).sum())
        conflicts += _label_conflicts(keys[s], ys[s])
        dup = np.flatnonzero(~np.isin(np.arange(len(keys[s])), first))[:EXAMPLES]
        if len(dup):
            examples[f"duplicates_within_{s}"] = [_id(ids, s, i) for i in dup]
    across = {}
    for a, b in _PAIRS:
        hit = np.flatnonzero(np.isin(keys[b], keys[a]))
        across[f"{a}/{b}"] = int(len(hit))
        if len(hit):
            where = {k: i for i, k in enumerate(keys[a])}
            examples[f"duplicates_{a}/{b}"] = [{a: _id(ids, a, where[keys[b][i]]),
                                                b: _id(ids, b, i)} for i in hit[:EXAMPLES]]
    near_counts = {}
    image = _is_image(ds.x_train)
    if near:
        for a, b in _PAIRS:
            pairs = near_duplicates(xs[a], xs[b], image, exclude=np.isin(keys[b], keys[a]))
            near_counts[f"{a}/{b}"] = len(pairs)
            if pairs:
                examples[f"near_duplicates_{a}/{b}"] = [
                    {a: _id(ids, a, i), b: _id(ids, b, j), "correlation": round(c, 4)}
                    for i, j, c in pairs[:EXAMPLES]]
    classes = np.issubdtype(ds.y_train.dtype, np.integer)
    class_counts = imbalance = None
    if classes:
        k = ds.preprocessing.num_classes
        class_counts = {s: np.bincount(ys[s], minlength=k).tolist() for s in SPLITS}
        train = np.asarray(class_counts["train"])
        imbalance = (round(float(train.max() / train[train > 0].min()), 3)
                     if train.any() else None)
    channels, rows = _channel_rows(ds, image)
    missing, outliers, constant = {}, {}, []
    if rows is not None:
        for j, name in enumerate(channels):
            col = rows[:, j]
            ok = col[np.isfinite(col)]
            missing[name] = int(len(col) - len(ok))
            outliers[name] = int(robust_outliers(ok).sum()) if not image else 0
            if len(ok) and ok.min() == ok.max():
                constant.append(name)
    groups = (ids.get("groups") or {})
    shared = 0
    if groups:
        sets = [set(groups.get(s, [])) for s in SPLITS]
        shared = len((sets[0] & sets[1]) | (sets[0] & sets[2]) | (sets[1] & sets[2]))
    method = {"exact": "sha256 of each raw sample's bytes",
              "near": (f"coarse view (block means to at most {'7x7' if image else '16 steps'} "
                       f"per channel), nearest earlier-split sample by cosine >= "
                       f"{COARSE_MIN:g}, then full-resolution correlation >= {NEAR_MIN:g}")
              if near else "not run",
              "outliers": f"robust z-score |0.6745 (v - median) / MAD| > {OUTLIER_Z:g}"
              + (" (not applied to images)" if image else ""),
              "ids": ids.get("id", "")}
    return DataChecks({s: int(len(ys[s])) for s in SPLITS}, class_counts, imbalance, within,
                      conflicts, across, near_counts, examples, list(channels), missing,
                      outliers, constant, groups_shared=shared,
                      shared_rows=dict(ds.shared_rows or {}), policy=dict(ds.policy or {}),
                      method=method)


# --- policies ---------------------------------------------------------------------------

def apply_policies(ds: Dataset, *, duplicates: str = "drop", subset: int | None = None,
                   seed: int = 0) -> Dataset:
    """``ds`` with cross-split exact duplicates handled by ``duplicates`` and at most
    ``subset`` samples per split (stratified); what was done is in ``ds.policy`` and its
    notes."""
    if duplicates not in DUPLICATE_POLICIES:
        raise TflmpError(f"--duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, got "
                         f"'{duplicates}'")
    if subset is not None and subset < 1:
        raise TflmpError(f"--subset must be a positive number of samples per split, got "
                         f"{subset}")
    keys = {s: sample_keys(getattr(ds, f"x_{s}")) for s in SPLITS}
    found, drop = {}, {s: np.zeros(len(keys[s]), bool) for s in SPLITS}
    for a, b in _PAIRS:
        hit = np.isin(keys[b], keys[a])
        found[f"{a}/{b}"] = int(hit.sum())
        drop[b] |= hit
    notes = list(ds.notes)
    policy = {"duplicates": duplicates, "duplicates_found": found, "dropped": {}}
    total = sum(found.values())
    if total and duplicates == "error":
        raise TflmpError(f"{ds.name}: {total} val/test sample(s) are exact copies of samples "
                         f"in an earlier split ({_pairs_text(found)}): the score would be "
                         "inflated; remove them, or pass --duplicates drop (or keep)")
    keep = {s: np.ones(len(keys[s]), bool) for s in SPLITS}
    if total and duplicates == "drop":
        for s in ("val", "test"):
            keep[s] = ~drop[s]
            if len(keep[s]) and not keep[s].any():
                raise TflmpError(f"{ds.name}: every {s} sample copies a sample of an earlier "
                                 f"split, so dropping the copies leaves no {s} data; give "
                                 f"distinct {s} data, or pass --duplicates keep")
        policy["dropped"] = {pair: n for pair, n in found.items() if n}
        text = (f"dropped {int(drop['val'].sum())} val and {int(drop['test'].sum())} test "
                f"sample(s) that copy an earlier split ({_pairs_text(found)}; --duplicates)")
        log.warning("%s: %s", ds.name, text)
        notes.append(text)
    elif total:
        notes.append(f"kept {total} cross-split exact duplicate(s) ({_pairs_text(found)})")
    if subset is not None:
        rng = np.random.default_rng(seed)
        for s in SPLITS:
            y = getattr(ds, f"y_{s}")
            chosen = np.flatnonzero(keep[s])
            if len(chosen) > subset:
                take = _stratified_take(y[chosen], subset, rng)
                mask = np.zeros(len(y), bool)
                mask[chosen[take]] = True
                keep[s] = mask
        policy["subset"] = subset
        notes.append(f"--subset {subset}: at most {subset} samples per split, stratified, "
                     f"seed {seed}")
    if all(k.all() for k in keep.values()):
        return dataclasses.replace(ds, notes=notes, policy=policy)
    arrays = {}
    for s in SPLITS:
        arrays[f"x_{s}"] = getattr(ds, f"x_{s}")[keep[s]]
        arrays[f"y_{s}"] = getattr(ds, f"y_{s}")[keep[s]]
    ids = None
    if ds.sample_ids is not None:
        ids = dict(ds.sample_ids)
        for s in SPLITS:
            if len(ids.get(s, [])) == len(keep[s]):
                ids[s] = [v for v, k in zip(ids[s], keep[s]) if k]
    groups = ({s: np.asarray(g)[keep[s]] for s, g in ds.groups.items()}
              if ds.groups is not None else None)
    return dataclasses.replace(ds, **arrays, notes=notes, policy=policy, sample_ids=ids,
                               groups=groups)


def class_weights(y: np.ndarray, num_classes: int) -> dict[int, float]:
    """``--class-weight auto``: n / (classes x count) per class present in ``y``."""
    counts = np.bincount(y, minlength=num_classes)
    present = counts > 0
    return {int(k): float(len(y) / (present.sum() * counts[k]))
            for k in np.flatnonzero(present)}


# --- the methods --------------------------------------------------------------------------

def sample_keys(x: np.ndarray) -> np.ndarray:
    """sha256 (hex, first 32 digits) of each raw sample's dtype, shape and bytes."""
    x = np.ascontiguousarray(x)
    head = f"{x.dtype.str}{x.shape[1:]}".encode()
    return np.array([hashlib.sha256(head + s.tobytes()).hexdigest()[:32] for s in x],
                    dtype="U32")


def robust_outliers(values: np.ndarray) -> np.ndarray:
    """Mask of the values whose robust z-score exceeds ``OUTLIER_Z``."""
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return np.zeros(0, bool)
    med = np.median(values)
    dev = np.abs(values - med)
    mad = np.median(dev)
    if mad > 0:
        z = 0.6745 * dev / mad
    else:
        mean_ad = dev.mean()
        if mean_ad == 0:
            return np.zeros(len(values), bool)
        z = dev / (1.2533 * mean_ad)
    return z > OUTLIER_Z


def coarse_view(x: np.ndarray, image: bool) -> np.ndarray:
    """(N, d) unit-length centred block means: <= 7x7 per image channel, or <= 16 steps
    per window channel."""
    return np.concatenate([_coarse(x[i:i + _VIEW_CHUNK], image)
                           for i in range(0, len(x), _VIEW_CHUNK)]) if len(x) else \
        np.zeros((0, 1), np.float32)


def _coarse(x: np.ndarray, image: bool) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if image:
        x = x.reshape(*x.shape[:3], -1) if x.ndim >= 3 else x[:, :, None, None]
        x = _block_mean(_block_mean(x, 1, 7), 2, 7)
    elif x.ndim >= 2:
        x = _block_mean(x.reshape(len(x), x.shape[1], -1), 1, 16)
    return _unit_rows(x.reshape(len(x), -1))


def near_duplicates(ref: np.ndarray, query: np.ndarray, image: bool,
                    exclude: np.ndarray | None = None) -> list[tuple[int, int, float]]:
    """(index in ref, index in query, correlation) of each query sample whose nearest ref
    sample (coarse cosine >= COARSE_MIN) correlates >= NEAR_MIN at full resolution;
    ``exclude`` masks query samples (exact copies) out."""
    if len(ref) == 0 or len(query) == 0:
        return []
    if not image:  # windows compare by shape: channel means removed, channels equally scaled
        ref, query = _window_shapes(ref, query)
    best, value = _nearest(coarse_view(query, image), coarse_view(ref, image))
    keep = value >= COARSE_MIN
    if exclude is not None:
        keep &= ~exclude
    j = np.flatnonzero(keep)
    if not len(j):
        return []
    i = best[j]
    corr = _correlations(ref, query, i, j)
    return [(int(a), int(b), float(c)) for a, b, c in zip(i, j, corr) if c >= NEAR_MIN]


def _nearest(q: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``q``, the first row of ``r`` with the largest dot product, and
    that product.  Tiles of ``_CHUNK`` x ``_REF_CHUNK`` keep each product block in the
    cache (half the CPU time of whole rows of ``r`` on MNIST's 16k x 54k)."""
    r_t = np.ascontiguousarray(r.T)
    best = np.zeros(len(q), np.int64)
    value = np.full(len(q), -np.inf, np.float32)
    block = np.empty((_CHUNK, _REF_CHUNK), np.float32)
    for start in range(0, len(q), _CHUNK):
        rows = q[start:start + _CHUNK]
        b, v = best[start:start + _CHUNK], value[start:start + _CHUNK]  # views
        for first in range(0, r_t.shape[1], _REF_CHUNK):
            cols = r_t[:, first:first + _REF_CHUNK]
            sims = np.matmul(rows, cols, out=block[:len(rows), :cols.shape[1]])
            arg = sims.argmax(axis=1)
            top = sims[np.arange(len(arg)), arg]
            better = top > v  # strictly: on a tie the earlier row of r stays
            v[better], b[better] = top[better], arg[better] + first
    return best, value


def _window_shapes(ref, query):
    """Windows (N, steps, channels) minus each window's channel means, divided by each
    channel's std over both sets: two quiet stretches of one sensor do not look alike."""
    def shaped(x):
        x = np.asarray(x, np.float32)
        x = x.reshape(len(x), x.shape[1] if x.ndim > 1 else 1, -1)
        return x - np.nanmean(x, axis=1, keepdims=True)
    ref, query = shaped(ref), shaped(query)
    both = np.concatenate([ref, query]).reshape(-1, ref.shape[-1])
    std = np.nanstd(both, axis=0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    return ref / std, query / std


def _correlations(a, b, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Pearson correlation of rows ``a[i[k]]`` and ``b[j[k]]`` of (N, ...) arrays, in
    float64, a cache-sized block of pairs at a time."""
    out = np.zeros(len(i))
    for start in range(0, len(i), _CHUNK):
        rows, cols = i[start:start + _CHUNK], j[start:start + _CHUNK]
        x = np.asarray(a[rows], np.float64).reshape(len(rows), -1)
        y = np.asarray(b[cols], np.float64).reshape(len(rows), -1)
        x -= x.mean(axis=1, keepdims=True)
        y -= y.mean(axis=1, keepdims=True)
        den = np.sqrt(np.einsum("ij,ij->i", x, x) * np.einsum("ij,ij->i", y, y))
        num = np.einsum("ij,ij->i", x, y)
        out[start:start + len(x)] = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    return out


def _block_mean(x: np.ndarray, axis: int, bins: int) -> np.ndarray:
    """Means of blocks of ceil(n / bins) along ``axis`` (the last block edge-padded)."""
    n = x.shape[axis]
    if n <= bins:
        return x
    size = -(-n // bins)
    pad = -n % size
    if pad:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, pad)
        x = np.pad(x, widths, mode="edge")
    shape = (*x.shape[:axis], x.shape[axis] // size, size, *x.shape[axis + 1:])
    return x.reshape(shape).mean(axis=axis + 1)


def _unit_rows(v: np.ndarray) -> np.ndarray:
    v = np.nan_to_num(v - v.mean(axis=1, keepdims=True))
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def _is_image(x: np.ndarray) -> bool:
    return x.dtype == np.uint8 or x.ndim == 4


def _channel_rows(ds: Dataset, image: bool):
    """(channel names, (rows, channels) values) the per-channel checks read."""
    if ds.channel_rows is not None:
        return list(ds.channel_names or []), ds.channel_rows
    if image:  # only missing values and constant channels: per-channel min and max
        parts = [getattr(ds, f"x_{s}") for s in SPLITS]
        c = parts[0].shape[-1] if parts[0].ndim == 4 else 1
        rows = [p.reshape(-1, c) for p in parts if len(p)]
        lo = np.min([r.min(axis=0) for r in rows], axis=0).astype(np.float64)
        hi = np.max([r.max(axis=0) for r in rows], axis=0).astype(np.float64)
        if np.issubdtype(parts[0].dtype, np.floating):
            nan = sum(np.isnan(r).sum(axis=0) for r in rows)
            if nan.any():
                return [f"channel {i}" for i in range(c)], np.concatenate(rows).astype(
                    np.float64)
        return [f"channel {i}" for i in range(c)], np.stack([lo, hi])
    x = np.concatenate([getattr(ds, f"x_{s}") for s in SPLITS])
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        return [], None
    if image:
        c = x.shape[-1] if x.ndim == 4 else 1
    else:
        c = x.shape[-1] if x.ndim >= 3 else 1
    names = [f"channel {i}" for i in range(c)]
    return names, x.reshape(-1, c).astype(np.float64)


def _label_conflicts(keys, y) -> int:
    """How many distinct samples occur with more than one label."""
    if len(keys) == 0:
        return 0
    order = np.lexsort((y, keys))
    k, labels = keys[order], y[order]
    new_key = np.r_[True, k[1:] != k[:-1]]
    new_pair = new_key | np.r_[True, labels[1:] != labels[:-1]]
    pairs_per_key = np.add.reduceat(new_pair.astype(np.int64), np.flatnonzero(new_key))
    return int((pairs_per_key > 1).sum())


def _stratified_take(y: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` positions of ``y`` in proportion to its classes (largest remainders), at
    least one per class while n allows."""
    if not np.issubdtype(y.dtype, np.integer):
        return np.sort(rng.permutation(len(y))[:n])
    labels, counts = np.unique(y, return_counts=True)
    share = counts * n / len(y)
    take = np.floor(share).astype(int)
    if n >= len(labels):
        take = np.maximum(take, 1)
    while take.sum() > n:
        take[np.argmax(take)] -= 1
    rest = np.argsort(-(share - np.floor(share)))
    i = 0
    while take.sum() < n:
        k = rest[i % len(rest)]
        if take[k] < counts[k]:
            take[k] += 1
        i += 1
    out = [rng.permutation(np.flatnonzero(y == lab))[:t] for lab, t in zip(labels, take)]
    return np.sort(np.concatenate(out))


def _id(ids: dict, split: str, i: int):
    values = ids.get(split, [])
    return values[i] if i < len(values) else int(i)


def _pairs_text(found: dict) -> str:
    return ", ".join(f"{pair} {n}" for pair, n in found.items() if n) or "none"
