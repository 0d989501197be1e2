"""``.ts`` files (the sktime / aeon time-series format of the UCR, UEA and Monash
archives): one case per line, channels separated by ``:``, values by ``,``, the class
label or the regression target last.

A dataset is a folder holding ``<name>_TRAIN.ts`` and ``<name>_TEST.ts`` (validation is
carved from train), or one ``.ts`` file (split 7:2:1).  Samples are float32 (steps,
channels), standardized per channel with train-split statistics, like sensor CSV
windows; ``@targetLabel true`` files are regression data (float targets), ``@classLabel
true a b c`` files classification data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TflmpError
from ..preprocessing import Preprocessing
from .dataset import Dataset
from .spec import DataSpec
from .splits import ids_of, split_indices, split_note, standardize


@dataclass(frozen=True)
class TsFile:
    name: str  # @problemName
    x: np.ndarray  # (cases, steps, channels) float32
    y: np.ndarray  # class indices (int64) or targets (float32)
    classes: list[str] | None  # None for regression


def train_test_files(path: Path) -> tuple[Path, Path | None]:
    """The train file and the test file (None: one file to split) of ``path``."""
    if path.is_dir():
        trains = sorted(path.glob("*_TRAIN.ts"))
        if len(trains) != 1:
            raise TflmpError(f"{path} should hold one <name>_TRAIN.ts and its _TEST.ts; it "
                             f"holds {len(trains)} _TRAIN.ts files")
        test = trains[0].with_name(trains[0].name.replace("_TRAIN.ts", "_TEST.ts"))
        return trains[0], test if test.is_file() else None
    if path.name.endswith("_TRAIN.ts"):
        test = path.with_name(path.name.replace("_TRAIN.ts", "_TEST.ts"))
        return path, test if test.is_file() else None
    return path, None


def is_ts_dataset(path: Path) -> bool:
    return path.suffix.lower() == ".ts" or (path.is_dir() and any(path.glob("*_TRAIN.ts")))


def task_of_ts(path: Path) -> str:
    """'regression' or 'classification', from the train file's header alone."""
    train, _ = train_test_files(path)
    for line in _lines(train):
        key, _, value = line.partition(" ")
        key = key.lower()
        if key == "@targetlabel" and value.strip().lower() == "true":
            return "regression"
        if key == "@data":
            break
    return "classification"


def read_ts(path: Path, classes: list[str] | None = None) -> TsFile:
    """Parse one ``.ts`` file; ``classes`` fixes the label order (a test file's labels
    must be among the train file's)."""
    header: dict[str, str] = {}
    cases, targets = [], []
    data = False
    for number, line in enumerate(_lines(path), 1):
        if not data:
            if line.startswith("#") or not line.strip():
                continue
            key, _, value = line.strip().partition(" ")
            if key.lower() == "@data":
                data = True
            elif key.startswith("@"):
                header[key.lower()] = value.strip()
            else:
                raise TflmpError(f"{path}:{number}: '{line[:40]}' is neither a header (@...) "
                                 "nor after @data; is it a .ts file?")
            continue
        if not line.strip():
            continue
        parts = line.strip().split(":")
        if len(parts) < 2:
            raise TflmpError(f"{path}:{number}: a case needs its values and a label after ':'")
        try:
            channels = [np.array([float(v) for v in p.split(",")], np.float32)
                        for p in parts[:-1]]
        except ValueError:
            raise TflmpError(f"{path}:{number}: a value is not a number (missing values '?' "
                             "are not supported; fill or drop the case)") from None
        if len({len(c) for c in channels}) != 1:
            raise TflmpError(f"{path}:{number}: channels of unequal length; tflmp takes "
                             "equal-length series")
        if not all(np.isfinite(c).all() for c in channels):
            raise TflmpError(f"{path}:{number}: the case holds NaN or inf; clean the data")
        cases.append(np.stack(channels, axis=1))
        targets.append(parts[-1].strip())
    if not data or not cases:
        raise TflmpError(f"{path} has no @data section with cases; is it a .ts file?")
    if len({c.shape for c in cases}) != 1:
        raise TflmpError(f"{path}: the cases have different lengths or channel counts; tflmp "
                         "takes equal-length series")
    x = np.stack(cases).astype(np.float32)
    name = header.get("@problemname", path.stem.split("_")[0])
    if header.get("@targetlabel", "").lower() == "true":
        try:
            y = np.array([float(t) for t in targets], np.float32)
        except ValueError:
            raise TflmpError(f"{path}: @targetLabel true needs a numeric target per case")
        return TsFile(name, x, y, None)
    if classes is None:
        declared = header.get("@classlabel", "").split()
        classes = declared[1:] if declared[:1] == ["true"] else sorted(set(targets))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(targets) - set(index))
    if unknown:
        raise TflmpError(f"{path}: label(s) {', '.join(unknown[:5])} are not classes of the "
                         f"train data ({', '.join(classes)})")
    return TsFile(name, x, np.array([index[t] for t in targets], np.int64), list(classes))


def load_ts_spec(spec: DataSpec) -> Dataset:
    """A .ts dataset as train/val/test, standardized per channel on train."""
    train_path, test_path = train_test_files(spec.path)
    train = read_ts(train_path)
    split_notes: list[str] = []
    regression = train.classes is None
    if test_path is not None:
        test = read_ts(test_path, train.classes)
        if test.x.shape[1:] != train.x.shape[1:]:
            raise TflmpError(f"{test_path}: cases of shape {list(test.x.shape[1:])}, the train "
                             f"file's are {list(train.x.shape[1:])}")
        tr, va = split_indices(train.y, spec.seed, None, train_path, spec.val_fraction,
                               notes=split_notes)
        te = np.arange(len(test.y))
        x_tr, y_tr, x_va, y_va, x_te, y_te = (train.x[tr], train.y[tr], train.x[va],
                                              train.y[va], test.x, test.y)
        what = f"case number in {train_path.name} (train, val), in {test_path.name} (test)"
        how = (f"{train_path.name} and {test_path.name}; validation = "
               f"{spec.val_fraction:.0%} of train, seed {spec.seed}")
    else:
        tr, va, te = split_indices(train.y, spec.seed, spec.split, train_path,
                                   notes=split_notes)
        x_tr, y_tr, x_va, y_va, x_te, y_te = (train.x[tr], train.y[tr], train.x[va],
                                              train.y[va], train.x[te], train.y[te])
        what = f"case number in {train_path.name}"
        how = f"{train_path.name}, {split_note(spec.split, spec.seed)}"
    per_channel = (0, 1)  # standardized per channel: over cases and time steps
    scale, offset = standardize(x_tr, axis=per_channel)
    steps, channels = x_tr.shape[1:]
    labels = ["target"] if regression else train.classes
    pre = Preprocessing(train.name, (steps, channels), "float32", scale.tolist(),
                        offset.tolist(), labels)
    kind = "regression targets" if regression else f"{len(labels)} classes"
    notes = [f".ts series {train.name}: {len(y_tr) + len(y_va) + len(y_te)} cases of {steps} "
             f"steps x {channels} channel(s), {kind}; {how}; standardized per channel on train",
             *split_notes]
    return Dataset(train.name, x_tr, y_tr, x_va, y_va, x_te, y_te, preprocessing=pre,
                   notes=notes, task="regression" if regression else "classification",
                   sample_ids=ids_of((tr, va, te), what),
                   standardized={"axis": list(per_channel)})


def _lines(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except FileNotFoundError:
        raise TflmpError(f".ts file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TflmpError(f"cannot read {path} as a UTF-8 .ts file: {e}") from None
