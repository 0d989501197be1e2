"""Sensor CSVs: one row per time step, cut into labelled windows.

Each window is a sample of ``window`` consecutive rows; normalization statistics come
from the train split only.  Only NumPy and the standard library are used.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..preprocessing import Preprocessing
from .dataset import Dataset
from .spec import DEFAULT_SPLIT, DataSpec
from .splits import split_arrays, split_note, standardize

SESSION_COLUMNS = ("session", "file")


def load_csv_spec(spec: DataSpec) -> Dataset:
    """The windows of the CSV named by ``spec`` (``--window``, ``--stride`` default window)."""
    if not spec.window:
        raise TflmpError(f"{spec.dataset} is a CSV of sensor samples: give the window length "
                         "in rows with --window (and --stride)")
    return load_csv_windows(spec.path, window=spec.window, stride=spec.stride or spec.window,
                            label_column=spec.label_column, columns=spec.columns,
                            seed=spec.seed, split=spec.split)


def load_csv_windows(path: str | Path, *, window: int, stride: int, label_column: str = "label",
                     columns: list[str] | None = None, seed: int = 0,
                     split: tuple[float, float, float] = DEFAULT_SPLIT) -> Dataset:
    """Windows of ``window`` consecutive rows every ``stride`` rows of a sensor CSV.

    One row per time step: numeric channel columns (``columns``, default all but the
    label and session columns) and ``label_column``.  A window whose rows do not all
    share one label is skipped; a ``session`` or ``file`` column starts the windows
    afresh wherever its value changes, so no window spans two recordings.  Samples are
    float32 (window, channels), standardized per channel with train-split statistics.
    """
    path = Path(path)
    window, stride = _positive_int("--window", window), _positive_int("--stride", stride)
    header, lines, rows = _read_csv(path)
    if label_column not in header:
        raise TflmpError(f"{path} has no label column '{label_column}' (columns: "
                         f"{', '.join(header)}); name it with --label-column")
    session = next((c for c in header if c.lower() in SESSION_COLUMNS), None)
    channels = list(columns) if columns else [c for c in header
                                              if c not in (label_column, session)]
    missing = [c for c in channels if c not in header]
    if missing:
        raise TflmpError(f"{path} has no column(s) {', '.join(missing)} (columns: "
                         f"{', '.join(header)}); list channel columns with --columns")
    if not channels:
        raise TflmpError(f"{path} has no channel columns besides '{label_column}'"
                         f"{' and ' + repr(session) if session else ''}; add the sensor columns")
    if len(rows) < window:
        raise TflmpError(f"{path} has {len(rows)} data rows, fewer than --window {window}; "
                         "use a smaller window or a longer recording")
    values = np.stack([_numeric_column(path, header, lines, rows, c) for c in channels], axis=1)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if len(bad):
        raise TflmpError(f"{path}:{lines[bad[0]]}: the row holds NaN or inf; remove or fill it")
    labels, y_rows = _label_ids(path, lines, [row[header.index(label_column)] for row in rows])
    groups = [row[header.index(session)] for row in rows] if session else None
    starts, run_of, skipped = _window_starts(y_rows, groups, window, stride)
    y = y_rows[starts]
    for class_id, name in enumerate(labels):
        if not np.any(y == class_id):
            longest = np.bincount(run_of[y_rows == class_id]).max()
            raise TflmpError(f"{path}: class '{name}' has no complete window of {window} rows "
                             f"(its longest unbroken run is {longest} rows); use a smaller "
                             f"--window or record more '{name}' data")
    x = values[starts[:, None] + np.arange(window)].astype(np.float32)
    parts = split_arrays(x, y, seed, split, path)
    scale, offset = standardize(parts[0], axis=(0, 1))
    pre = Preprocessing(path.stem, (window, len(channels)), "float32", scale.tolist(),
                        offset.tolist(), labels)
    breaks = "label or session" if session else "label"
    notes = [f"CSV {path}: {len(rows)} rows, channels {', '.join(channels)}; windows of "
             f"{window} rows every {stride} ({len(starts)} kept, {skipped} crossing a {breaks} "
             f"change skipped); {split_note(split, seed)}; standardized per channel on train"]
    if stride < window:
        notes.append(f"windows overlap by {window - stride} rows, so neighbouring windows "
                     "can fall in different splits: val/test accuracy is optimistic")
    return Dataset(path.stem, *parts, preprocessing=pre, notes=notes)


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
    cells = [row[j] for row in rows]
    try:
        return np.fromiter(map(float, cells), np.float64, len(cells))
    except ValueError:
        for line, cell in zip(lines, cells):
            try:
                float(cell)
            except ValueError:
                raise TflmpError(f"{path}:{line}: column '{name}' holds '{cell}', not a "
                                 "number; fix the cell or leave the column out with "
                                 "--columns") from None
        raise


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


def _window_starts(y, groups, window, stride):
    """Start rows of the windows inside one label run, the run id of every row, and how
    many windows were skipped for crossing a label or session change."""
    n = len(y)
    new_group = np.zeros(n, bool)
    new_group[0] = True
    if groups is not None:
        g = np.asarray(groups)
        new_group[1:] = g[1:] != g[:-1]
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
