"""Sensor CSVs: one row per time step, cut into labelled windows.

Each window is a sample of ``window`` consecutive rows; normalization statistics come
from the train split only.  Only NumPy and the standard library are used.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..preprocessing import Preprocessing
from .dataset import SPLITS, Dataset
from .spec import DEFAULT_SPLIT, DataSpec
from .splits import split_indices, split_note, standardize

# a column named like one of these is the recording a row belongs to: windows never span
# two, and whole groups go to one split (``--group-column``)
GROUP_COLUMNS = ("session", "subject", "speaker", "file", "group")
# columns named like a timestamp are never channels (plus any column of ISO dates)
TIMESTAMP_NAMES = ("timestamp", "time", "t", "date", "datetime")
TIMESTAMP_UNITS = {"_ms": 1e-3, "_us": 1e-6, "_ns": 1e-9, "_s": 1.0, "_sec": 1.0}
GAP_FACTOR = 1.5  # a step longer than this times the median interval ends a window
MISSING_CELLS = ("", "nan", "na", "n/a", "null", "none", "?")
MISSING_POLICIES = ("error", "drop", "interpolate")


def load_csv_spec(spec: DataSpec) -> Dataset:
    """The windows of the CSV named by ``spec`` (``--window``, ``--stride`` default window)."""
    if not spec.window:
        raise TflmpError(f"{spec.dataset} is a CSV of sensor samples: give the window length "
                         "in rows with --window (and --stride)")
    return load_csv_windows(spec.path, window=spec.window, stride=spec.stride or spec.window,
                            label_column=spec.label_column, columns=spec.columns,
                            seed=spec.seed, split=spec.split,
                            group_column=spec.group_column, missing=spec.missing)


def timestamp_unit(name: str) -> float | None:
    """Seconds per unit of a column named like a timestamp, else None."""
    low = name.strip().lower()
    if low in TIMESTAMP_NAMES:
        return 1.0
    for suffix, unit in TIMESTAMP_UNITS.items():
        if low.endswith(suffix) and len(low) > len(suffix):
            return unit
    return None


def load_csv_windows(path: str | Path, *, window: int, stride: int, label_column: str = "label",
                     columns: list[str] | None = None, seed: int = 0,
                     split: tuple[float, float, float] = DEFAULT_SPLIT,
                     group_column: str | None = None, missing: str = "error") -> Dataset:
    """Windows of ``window`` consecutive rows every ``stride`` rows of a sensor CSV.

    One row per time step: numeric channel columns (``columns``, default all but the
    label, group and timestamp columns) and ``label_column``.  A window whose rows do not
    all share one label is skipped.  A group column (``group_column``, default the first
    column named session, subject, speaker, file or group) starts the windows afresh
    wherever its value changes, and whole groups go to one split (``"none"``: the split
    ignores the column; it still ends windows).

    Columns named like a timestamp (``timestamp``, ``time``, ``t``, ``date``,
    ``*_ms``/``*_us``/``*_ns``/``*_s``, or holding ISO dates) are never channels: the
    first gives the sample rate (1 / mean interval, in ``preprocessing.sample_rate_hz``),
    and a step back in time or longer than 1.5x the median interval is a gap that ends a
    window.  Missing cells (empty, NaN, NA, ?) are an error naming the row, or with
    ``missing`` "drop" the row is dropped (a gap), or "interpolate" fills them linearly
    within the group.  Samples are float32 (window, channels), standardized per channel
    with train-split statistics.
    """
    path = Path(path)
    w = read_csv_windows(path, window=window, stride=stride, label_column=label_column,
                         columns=columns, group_column=group_column, missing=missing)
    window, stride, group, starts, y = w.window, w.stride, w.group, w.starts, w.y
    split_by_group = group is not None and (group_column or "").lower() != "none"
    for class_id, name in enumerate(w.labels):
        if not np.any(y == class_id):
            longest = np.bincount(w.run_of[w.row_labels == class_id]).max() if np.any(
                w.row_labels == class_id) else 0
            raise TflmpError(f"{path}: class '{name}' has no complete window of {window} rows "
                             f"(its longest unbroken run is {longest} rows); use a smaller "
                             f"--window or record more '{name}' data")
    window_groups = w.row_groups[starts] if split_by_group else None
    split_notes: list[str] = []
    tr, va, te = split_indices(y, seed, split, path, groups=window_groups, notes=split_notes)
    parts = (w.x[tr], y[tr], w.x[va], y[va], w.x[te], y[te])
    per_channel = (0, 1)  # standardized per channel: over samples and time steps
    scale, offset = standardize(parts[0], axis=per_channel)
    pre = Preprocessing(path.stem, (window, len(w.channels)), "float32", scale.tolist(),
                        offset.tolist(), w.labels, sample_rate_hz=w.rate)
    what = " or ".join(["label", *([group] if group else []), *(["gap"] if w.stamps else [])])
    how = (f"whole '{group}' groups per split, seed {seed}" if split_by_group
           else split_note(split, seed))
    notes = [f"CSV {path}: {w.rows} rows, channels {', '.join(w.channels)}; windows "
             f"of {window} rows every {stride} ({len(starts)} kept, {w.skipped} crossing a "
             f"{what} change skipped); {how}; standardized per channel on train", *w.notes]
    if stride < window and not split_by_group:
        notes.append(f"windows overlap by {window - stride} rows, so neighbouring windows "
                     "can fall in different splits: val/test accuracy is optimistic; a "
                     "group column (--group-column) keeps recordings apart")
    shared_rows = _shared_rows(starts, window, (tr, va, te))
    sample_ids = {"id": "CSV line of each window's first row",
                  **{name: w.ids[p].tolist() for name, p in zip(SPLITS, (tr, va, te))}}
    if split_by_group:
        sample_ids["groups"] = {name: sorted(set(window_groups[p].tolist()))
                                for name, p in zip(SPLITS, (tr, va, te))}
    sample_groups = ({name: window_groups[p] for name, p in zip(SPLITS, (tr, va, te))}
                     if split_by_group else None)
    return Dataset(path.stem, *parts, preprocessing=pre, notes=notes + split_notes,
                   sample_ids=sample_ids, channel_rows=w.raw, channel_names=list(w.channels),
                   shared_rows=shared_rows, groups=sample_groups,
                   standardized={"axis": list(per_channel)})


@dataclass
class CsvWindows:
    """The windows of a sensor CSV before any split: raw float32 samples (windows,
    window, channels), each window's class index (None without a label column) and the
    CSV line of its first row, and what the file told on the way."""

    x: np.ndarray
    y: np.ndarray | None
    labels: list[str]  # the file's class names, sorted (numerically when integers)
    ids: np.ndarray  # CSV line of each window's first row
    starts: np.ndarray  # each window's first row among the kept rows
    channels: list[str]
    group: str | None  # the column naming each row's recording
    stamps: list[str]  # timestamp columns (the first gives the rate)
    row_groups: np.ndarray | None  # the group of each kept row
    raw: np.ndarray  # (rows, channels), NaN = missing
    rate: float | None  # Hz, from the first timestamp column
    notes: list[str]
    rows: int
    skipped: int  # windows crossing a label, group or gap change
    window: int
    stride: int
    row_labels: np.ndarray  # the class index of each kept row
    run_of: np.ndarray  # the unbroken run each kept row belongs to


def read_csv_windows(path: str | Path, *, window: int, stride: int, label_column: str = "label",
                     columns: list[str] | None = None, group_column: str | None = None,
                     missing: str = "error", need_labels: bool = True) -> CsvWindows:
    """Every window of a sensor CSV (the rules of :func:`load_csv_windows`), unsplit; a
    file without ``label_column`` gives windows without classes unless ``need_labels``."""
    path = Path(path)
    window, stride = _positive_int("--window", window), _positive_int("--stride", stride)
    if missing not in MISSING_POLICIES:
        raise TflmpError(f"--missing must be one of {', '.join(MISSING_POLICIES)}, got "
                         f"'{missing}'")
    header, lines, rows = _read_csv(path)
    labelled = label_column in header
    if not labelled and need_labels:
        raise TflmpError(f"{path} has no label column '{label_column}' (columns: "
                         f"{', '.join(header)}); name it with --label-column")
    group = _group_column(path, header, group_column)
    stamps, channels = _columns(path, header, rows[0], label_column, group, columns)
    if len(rows) < window:
        raise TflmpError(f"{path} has {len(rows)} data rows, fewer than --window {window}; "
                         "use a smaller window or a longer recording")
    raw = np.stack([_numeric_column(path, header, lines, rows, c) for c in channels], axis=1)
    labels, y_rows = [], np.zeros(len(rows), np.int64)
    if labelled:
        labels, y_rows = _label_ids(path, lines, [row[header.index(label_column)]
                                                  for row in rows])
    groups = np.array([row[header.index(group)] for row in rows]) if group else None
    breaks = np.zeros(len(rows), bool)  # True: a new segment starts at this row
    notes = []
    rate = None
    if stamps:
        seconds = _seconds(path, header, lines, rows, stamps[0])
        rate, gaps, text = _timing(seconds, stamps[0], groups)
        breaks |= gaps
        notes.append(text)
    values, keep, text = _apply_missing(path, lines, channels, raw, missing, groups)
    if text:
        notes.append(text)
    # rows dropped for missing values: the row after a dropped one starts a new segment
    dropped_before = np.r_[False, ~keep[:-1]]
    breaks = (breaks | dropped_before)[keep]
    kept_lines = np.asarray(lines)[keep]
    y_kept = y_rows[keep]
    groups_kept = groups[keep] if groups is not None else None
    starts, run_of, skipped = _window_starts(y_kept, groups_kept, breaks, window, stride)
    x = values[keep][starts[:, None] + np.arange(window)].astype(np.float32)
    ids = kept_lines[starts]
    return CsvWindows(x, y_kept[starts] if labelled else None, labels, ids, starts, channels,
                      group, stamps, groups_kept, raw, rate, notes, len(rows), skipped, window,
                      stride, y_kept, run_of)


def channel_columns(path: str | Path, *, label_column: str = "label",
                    columns: list[str] | None = None,
                    group_column: str | None = None) -> list[str]:
    """The channel columns :func:`read_csv_windows` reads from ``path`` (its header and
    first row decide)."""
    header, first_row = csv_head(path)
    group = _group_column(path, header, group_column)
    return _columns(path, header, first_row, label_column, group, columns)[1]


def csv_head(path: str | Path) -> tuple[list[str], list[str]]:
    """The header (stripped) and first data row of a CSV."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(line for line in f if line.strip())
            head = [row for row in (next(reader, None), next(reader, None)) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TflmpError(f"cannot read {path} as a UTF-8 CSV file: {e}") from None
    if len(head) < 2:
        raise TflmpError(f"{path} has no data rows; it needs a header line and one row per "
                         "time step")
    return [cell.strip() for cell in head[0]], head[1]


def _columns(path, header, first_row, label_column, group, columns):
    """(timestamp columns, channel columns) of a CSV: ``columns``, else all but the
    label, group and timestamp columns."""
    stamps = [c for c in header if c not in (label_column, group)
              and (timestamp_unit(c) is not None or _holds_dates(first_row[header.index(c)]))]
    if columns:
        named = [c for c in columns if c in stamps]
        if named:
            raise TflmpError(f"{path}: column(s) {', '.join(named)} hold timestamps, which "
                             "give the sample rate and are never channels; leave them out of "
                             "--columns")
    channels = list(columns) if columns else [c for c in header
                                              if c not in (label_column, group, *stamps)]
    absent = [c for c in channels if c not in header]
    if absent:
        raise TflmpError(f"{path} has no column(s) {', '.join(absent)} (columns: "
                         f"{', '.join(header)}); list channel columns with --columns")
    if not channels:
        raise TflmpError(f"{path} has no channel columns besides '{label_column}'"
                         f"{' and ' + repr(group) if group else ''}; add the sensor columns")
    return stamps, channels


def _shared_rows(starts, window, parts) -> dict:
    """How many windows of a later split share a row with a window of an earlier one
    (overlapping windows, ``--stride`` < ``--window``): {"train/val": n, ...}."""
    n = int(starts.max()) + window
    covered = []
    for p in parts:
        rows = np.zeros(n + 1, np.int64)
        np.add.at(rows, starts[p], 1)
        np.add.at(rows, starts[p] + window, -1)
        covered.append(np.cumsum(rows)[:n] > 0)
    prefix = [np.r_[0, np.cumsum(c)] for c in covered]
    out = {}
    for (a, b) in ((0, 1), (0, 2), (1, 2)):
        hits = prefix[a][starts[parts[b]] + window] - prefix[a][starts[parts[b]]]
        out[f"{SPLITS[a]}/{SPLITS[b]}"] = int((hits > 0).sum())
    return out


def _group_column(path, header, group_column) -> str | None:
    """The column naming each row's recording: ``group_column``, else the first named like
    one (also with ``"none"``: it still ends windows, only the split ignores it)."""
    if group_column and group_column.lower() != "none":
        if group_column not in header:
            raise TflmpError(f"{path} has no group column '{group_column}' (columns: "
                             f"{', '.join(header)}); name it with --group-column, or pass "
                             "--group-column none")
        return group_column
    return next((c for c in header if c.lower() in GROUP_COLUMNS), None)


def _holds_dates(cell: str) -> bool:
    """Whether a cell is an ISO date or date-time (``2020-01-31``, ``... 12:00:00.5``)."""
    cell = cell.strip()
    if len(cell) < 8 or cell[4:5] != "-":
        return False
    try:
        np.datetime64(cell.replace(" ", "T", 1))
        return True
    except ValueError:
        return False


def _seconds(path, header, lines, rows, name) -> np.ndarray:
    """A timestamp column in seconds (numbers in the unit its name says, or ISO dates)."""
    j = header.index(name)
    cells = [row[j].strip() for row in rows]
    if _holds_dates(cells[0]):
        try:
            stamps = np.array([c.replace(" ", "T", 1) for c in cells], "datetime64[ns]")
        except ValueError:
            bad = next(i for i, c in enumerate(cells) if not _holds_dates(c))
            raise TflmpError(f"{path}:{lines[bad]}: timestamp '{cells[bad]}' in column "
                             f"'{name}' is not an ISO date like the first row's; fix the "
                             "cell") from None
        return (stamps - stamps[0]).astype(np.int64) / 1e9
    values = _numeric_column(path, header, lines, rows, name)
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise TflmpError(f"{path}:{lines[bad]}: timestamp column '{name}' is empty; give "
                         "every row its time")
    return values * (timestamp_unit(name) or 1.0)


def _timing(seconds, name, groups):
    """(sample rate in Hz, the rows that start after a gap, a note)."""
    step = np.diff(seconds)
    same = np.ones(len(step), bool) if groups is None else groups[1:] == groups[:-1]
    positive = step[same & (step > 0)]
    if len(positive) == 0:
        raise TflmpError(f"timestamp column '{name}' never increases; it cannot give the "
                         "sample rate")
    median = float(np.median(positive))
    gap = same & ((step <= 0) | (step > GAP_FACTOR * median))
    regular = step[same & ~gap]
    rate = round(1.0 / float(regular.mean()), 3)
    starts = np.r_[False, gap]
    note = (f"timestamp column '{name}': {rate:g} Hz (median interval {median * 1e3:.4g} ms); "
            f"{int(gap.sum())} gap(s) (a step back, or longer than {GAP_FACTOR:g}x the median "
            "interval) end windows")
    return rate, starts, note


def _apply_missing(path, lines, channels, raw, policy, groups):
    """(values with missing cells handled, the rows kept, a note or None)."""
    nan = np.isnan(raw)
    keep = np.ones(len(raw), bool)
    if not nan.any():
        return raw, keep, None
    counts = nan.sum(axis=0)
    where = ", ".join(f"{c} {n}" for c, n in zip(channels, counts) if n)
    if policy == "error":
        row, col = np.argwhere(nan)[0]
        raise TflmpError(f"{path}:{lines[row]}: the row holds NaN or inf (a missing value in "
                         f"column '{channels[col]}'; {int(nan.sum())} missing in all: {where}); "
                         "fill them, or pass --missing drop or --missing interpolate")
    if policy == "drop":
        keep = ~nan.any(axis=1)
        return raw, keep, (f"missing values ({where}): {int((~keep).sum())} row(s) dropped; "
                           "windows do not span a dropped row")
    values = raw.copy()
    segment = np.zeros(len(raw), np.int64) if groups is None else np.unique(
        groups, return_inverse=True)[1]
    for g in np.unique(segment):
        rows = np.flatnonzero(segment == g)
        for j in range(values.shape[1]):
            col = values[rows, j]
            ok = ~np.isnan(col)
            if not ok.any():
                raise TflmpError(f"{path}: column '{channels[j]}' has no value at all in a "
                                 "group; it cannot be interpolated")
            values[rows, j] = np.interp(rows, rows[ok], col[ok])
    return values, keep, f"missing values ({where}) interpolated linearly within each group"


def _read_csv(path: Path) -> tuple[list[str], list[int], list[list[str]]]:
    """Header, line number of each data row, and the data rows (blank lines skipped)."""
    if not path.is_file():
        raise TflmpError(f"CSV file {path} does not exist; pass the path of a CSV with one "
                         "row per time step")
    header, lines, rows = None, [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for row in reader:
                if not any(row):
                    continue
                if header is None:
                    header = [cell.strip() for cell in row]
                elif len(row) != len(header):
                    raise TflmpError(f"{path}:{reader.line_num}: {len(row)} fields but the "
                                     f"header has {len(header)}; fix that row")
                else:
                    lines.append(reader.line_num)
                    rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise TflmpError(f"cannot read {path} as a UTF-8 CSV file: {e}") from None
    if header is None or not rows:
        raise TflmpError(f"{path} has no data rows; it needs a header line and one row per "
                         "time step")
    return header, lines, rows


def _numeric_column(path, header, lines, rows, name) -> np.ndarray:
    j = header.index(name)
    cells = ["nan" if row[j].strip().lower() in MISSING_CELLS else row[j] for row in rows]
    try:
        values = np.fromiter(map(float, cells), np.float64, len(cells))
    except ValueError:
        for line, cell in zip(lines, cells):
            try:
                float(cell)
            except ValueError:
                raise TflmpError(f"{path}:{line}: column '{name}' holds '{cell}', not a "
                                 "number; fix the cell or leave the column out with "
                                 "--columns") from None
        raise
    values[np.isinf(values)] = np.nan  # inf is no measurement either
    return values


def _label_ids(path, lines, cells) -> tuple[list[str], np.ndarray]:
    """Sorted label names (numerically when all are integers) and each row's index."""
    cells = [c.strip() for c in cells]
    if "" in cells:
        raise TflmpError(f"{path}:{lines[cells.index('')]}: the label cell is empty; "
                         "give every row a label")
    try:
        cells = [str(int(c)) for c in cells]
        names = sorted(set(cells), key=int)
    except ValueError:
        names = sorted(set(cells))
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[c] for c in cells], np.int64)


def _window_starts(y, groups, breaks, window, stride):
    """Start rows of the windows inside one label run, the run id of every row, and how
    many windows were skipped for crossing a label change.  A new group or a ``breaks``
    row (a gap) starts a new grid of windows."""
    n = len(y)
    new_group = np.asarray(breaks, bool).copy()
    new_group[0] = True
    if groups is not None:
        g = np.asarray(groups)
        new_group[1:] |= g[1:] != g[:-1]
    run_of = np.cumsum(new_group | np.r_[False, y[1:] != y[:-1]])
    bounds = np.r_[np.flatnonzero(new_group), n]
    starts = np.concatenate([np.arange(a, b - window + 1, stride)
                             for a, b in zip(bounds[:-1], bounds[1:])])
    keep = run_of[starts] == run_of[starts + window - 1]
    return starts[keep], run_of, int((~keep).sum())


def _positive_int(option: str, value) -> int:
    if isinstance(value, bool) or value != int(value) or value < 1:
        raise TflmpError(f"{option} must be a positive whole number, got {value}")
    return int(value)
