"""The run record, ``report.json``: what a training run measured, typed, and read and
written here only.

``tflmp train`` builds a :class:`RunRecord`; the console prints it, the reports render
it, ``verify --ladder`` adds its parity, and ``firmware`` reads the selected model and
the task from it.  Measurements that other wings own and type (the memory and board
profile, the parity ladder) are kept as the documents their ``to_dict()`` gives.
Schema 2 has the same keys as schema 1 (which still reads); it marks the record as
typed and checked on every read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import read_json, write_json
from .errors import TflmpError
from .tasks import error_drop

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)
FILE_NAME = "report.json"

# The models a run measures, in ledger order, with the one title every view shows.
FLOAT, QAT_KERAS, PTQ_INT8, QAT_INT8 = "float", "qat_keras", "ptq_int8_tflm", "qat_int8_tflm"
TITLES = {FLOAT: "float (Keras)", QAT_KERAS: "QAT (Keras)", PTQ_INT8: "PTQ int8 (TFLM)",
          QAT_INT8: "QAT int8 (TFLM)"}
INT8_CANDIDATES = (PTQ_INT8, QAT_INT8)


def title(key: str) -> str:
    """The title of a measured model (``qat_int8_tflm`` -> ``QAT int8 (TFLM)``)."""
    return TITLES.get(key, key)


@dataclass
class LedgerRow:
    value: float | None  # the task's metric on the test set
    drop: float | None = None  # how much worse than float, in the ledger's unit (None: float)

    @property
    def change(self) -> float | None:
        """Change vs float in the ledger's unit, positive = better (the sign every view
        shows)."""
        return None if self.drop is None else 0.0 - self.drop


# a ledger's unit -> the key its rows' drops have in report.json
_DROP_KEYS = {"pp": "drop_pp", "%": "drop_pct"}


@dataclass
class Ledger:
    """Float and each quantized model on the test set, and how far each is from float:
    in percentage points for accuracy and AUC, in percent of float's error for
    regression (the task decides, :meth:`tflm_pipeline.tasks.Task.drop`)."""

    metric: str
    rows: dict[str, LedgerRow]
    unit: str = "pp"

    @classmethod
    def of(cls, task, test_scores: dict[str, dict]) -> "Ledger":
        """The ledger of the test-set scores of ``FLOAT`` and the models after it."""
        metric, drop, unit = task.metric, task.drop, task.drop_unit
        if test_scores[FLOAT].get(metric) is None and task.fallback_metric:
            metric, drop, unit = task.fallback_metric, error_drop, "%"  # e.g. no anomalies
        base = test_scores[FLOAT][metric]
        rows = {FLOAT: LedgerRow(base)}
        for key in (QAT_KERAS, *INT8_CANDIDATES):
            if key in test_scores:
                value = test_scores[key][metric]
                rows[key] = LedgerRow(value, drop(base, value))
        return cls(metric, rows, unit)

    def to_dict(self) -> dict:
        out = {"metric": self.metric}
        if self.unit != "pp":
            out["drop_unit"] = self.unit
        key = _DROP_KEYS[self.unit]
        for name, row in self.rows.items():
            out[name] = ({self.metric: row.value} if row.drop is None
                         else {self.metric: row.value, key: row.drop})
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Ledger":
        metric, unit = d["metric"], d.get("drop_unit", "pp")
        key = _DROP_KEYS[unit]
        return cls(metric, {k: LedgerRow(v.get(metric), v.get(key)) for k, v in d.items()
                            if k not in ("metric", "drop_unit")}, unit)


@dataclass
class DatasetSummary:
    name: str
    train: int
    val: int
    test: int
    classes: int
    input_shape: list[int]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "train": self.train, "val": self.val, "test": self.test,
                "classes": self.classes, "input_shape": list(self.input_shape),
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetSummary":
        return cls(d["name"], d.get("train", 0), d.get("val", 0), d.get("test", 0),
                   d.get("classes", 0), list(d.get("input_shape", [])), list(d.get("notes", [])))


@dataclass
class Int8Preparation:
    rewrites: list[str] = field(default_factory=list)  # output-preserving rewrites
    float_during_qat: list[tuple[str, str]] = field(default_factory=list)  # (layer, reason)

    def to_dict(self) -> dict:
        return {"rewrites": list(self.rewrites),
                "float_during_qat": [{"layer": n, "reason": r} for n, r in self.float_during_qat]}

    @classmethod
    def from_dict(cls, d: dict) -> "Int8Preparation":
        return cls(list(d.get("rewrites", [])),
                   [(f["layer"], f["reason"]) for f in d.get("float_during_qat", [])])


@dataclass
class ModelFacts:
    """The selected int8 model, and the size and host arena of every candidate."""

    name: str
    params: int
    tflite_bytes: int
    sha256: str
    arena_bytes: int  # 64-bit host, measured in the TFLM interpreter
    arena_basis: str
    arena_32bit: dict  # mcu.arena.ArenaEstimate.to_dict() for the default TFLM release
    ops: list[str]
    input: dict
    output: dict
    candidates: dict[str, dict]  # key -> {"tflite_bytes", "arena_bytes", "arena_basis"}

    def to_dict(self) -> dict:
        return {"name": self.name, "params": self.params, "tflite_bytes": self.tflite_bytes,
                "sha256": self.sha256, "arena_bytes": self.arena_bytes,
                "arena_basis": self.arena_basis, "arena_32bit": self.arena_32bit,
                "ops": list(self.ops), "input": self.input, "output": self.output,
                "candidates": self.candidates}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelFacts":
        return cls(d["name"], d.get("params", 0), d.get("tflite_bytes", 0), d.get("sha256", ""),
                   d.get("arena_bytes", 0), d.get("arena_basis", ""), d.get("arena_32bit", {}),
                   list(d.get("ops", [])), d.get("input", {}), d.get("output", {}),
                   d.get("candidates", {}))


@dataclass
class TrainingFacts:
    batch_size: int
    optimizer: str
    lr: float
    phases: dict[str, dict] = field(default_factory=dict)  # "float"/"qat" -> fit result
    schedule: str = "constant"  # float training's --schedule
    recipe: str | None = None  # config.Recipe that filled the settings left open
    qat_decision: str | None = None  # why QAT ran or was skipped (config.qat_if_needed)

    def to_dict(self) -> dict:
        extra = {k: v for k, v in (("recipe", self.recipe), ("qat_decision", self.qat_decision))
                 if v is not None}
        return {"batch_size": self.batch_size, "optimizer": self.optimizer, "lr": self.lr,
                "schedule": self.schedule, **extra, **self.phases}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingFacts":
        return cls(d.get("batch_size", 0), d.get("optimizer", ""), d.get("lr", 0.0),
                   {k: v for k, v in d.items() if isinstance(v, dict)},
                   d.get("schedule", "constant"), d.get("recipe"), d.get("qat_decision"))


@dataclass
class RunRecord:
    """Everything ``report.json`` holds."""

    run_dir: str
    task: str
    dataset: DatasetSummary
    scores: dict[str, dict]  # model key -> the task's metrics on the test set (+ "val_<metric>")
    selected: str  # the int8 candidate chosen on validation data
    selection: str  # why, in words
    ledger: Ledger
    int8_preparation: Int8Preparation
    model: ModelFacts
    training: TrainingFacts
    timings_s: dict[str, float]
    profile: dict | None = None  # mcu.fit.DeviceProfile: totals, memory, flash
    board_fit: list[dict] | None = None  # one row per board of the database
    parity: dict | None = None  # tflm.parity ladder, added by `verify --ladder`
    per_layer_error: list[dict] | None = None
    # an anomaly detector's operating point (tasks.Threshold.to_dict()) and what it gives
    # on the test split ("test": tasks.verdict_metrics)
    threshold: dict | None = None
    data_checks: dict | None = None  # data.checks.DataChecks.to_dict(): leaks first
    lr_range: dict | None = None  # --lr auto: training.lr_range.LrRange.summary()
    diagnosis: list[dict] | None = None  # reports.diagnose findings (tflmp doctor)
    # --cv K: cv.stage.CrossValidation.to_dict(): k, groups, per-fold metrics, mean, std
    cross_validation: dict | None = None
    # classification: per-class precision/recall/F1/support of float and the selected int8
    # model on the test set ({"labels", "models": {key: Classification.per_class}})
    per_class: dict | None = None
    # classification: how many test samples the error galleries draw from and show
    error_gallery: dict | None = None

    @property
    def metric(self) -> str:
        return self.ledger.metric

    @property
    def selected_row(self) -> LedgerRow:
        return self.ledger.rows[self.selected]

    def to_dict(self) -> dict:
        out = {"schema_version": SCHEMA_VERSION, "run_dir": self.run_dir, "task": self.task,
               "dataset": self.dataset.to_dict(),
               "metrics": {**self.scores, "selected": self.selected,
                           "selection": self.selection},
               "ledger": self.ledger.to_dict(),
               "int8_preparation": self.int8_preparation.to_dict(),
               "model": self.model.to_dict(), "training": self.training.to_dict(),
               "timings_s": dict(self.timings_s)}
        for key in ("profile", "board_fit", "parity", "per_layer_error", "threshold",
                    "data_checks", "lr_range", "diagnosis", "cross_validation", "per_class",
                    "error_gallery"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: dict, where: str = FILE_NAME) -> "RunRecord":
        version = d.get("schema_version")
        if version not in READABLE_SCHEMAS:
            raise TflmpError(f"{where} has schema_version {version!r}; this tflmp reads "
                             f"{', '.join(map(str, READABLE_SCHEMAS))}: re-run `tflmp train`")
        missing = [k for k in ("task", "dataset", "metrics", "ledger", "model") if k not in d]
        if missing:
            raise TflmpError(f"{where} lacks {', '.join(missing)} (written by an older tflmp); "
                             "re-run `tflmp train`")
        try:
            metrics = dict(d["metrics"])
            selected, selection = metrics.pop("selected", ""), metrics.pop("selection", "")
            board_fit = d.get("board_fit")
            if board_fit is not None and not isinstance(board_fit, list):
                raise TypeError("board_fit must be a list of boards")
            return cls(run_dir=d.get("run_dir", ""), task=d["task"],
                       dataset=DatasetSummary.from_dict(d["dataset"]), scores=metrics,
                       selected=selected, selection=selection,
                       ledger=Ledger.from_dict(d["ledger"]),
                       int8_preparation=Int8Preparation.from_dict(d.get("int8_preparation", {})),
                       model=ModelFacts.from_dict(d["model"]),
                       training=TrainingFacts.from_dict(d.get("training", {})),
                       timings_s=dict(d.get("timings_s", {})), profile=d.get("profile"),
                       board_fit=board_fit, parity=d.get("parity"),
                       per_layer_error=d.get("per_layer_error"),
                       threshold=d.get("threshold"), data_checks=d.get("data_checks"),
                       lr_range=d.get("lr_range"), diagnosis=d.get("diagnosis"),
                       cross_validation=d.get("cross_validation"),
                       per_class=d.get("per_class"), error_gallery=d.get("error_gallery"))
        except (KeyError, TypeError, AttributeError) as e:
            raise TflmpError(f"{where} does not have the layout of a run record ({e}); "
                             "re-run `tflmp train`") from None


def read_record(run_dir: str | os.PathLike) -> RunRecord:
    """A finished run's ``report.json``, checked."""
    path = Path(run_dir) / FILE_NAME
    data = read_json(path, "re-run `tflmp train`")
    if data is None:
        raise TflmpError(f"{run_dir} has no report.json; train a run there with `tflmp train "
                         f"--out {run_dir}` (it renders the report), or pass a finished run "
                         "folder")
    return RunRecord.from_dict(data, str(path))


def write_record(run_dir: str | os.PathLike, record: RunRecord) -> Path:
    """Write ``report.json`` atomically."""
    return write_json(Path(run_dir) / FILE_NAME, record.to_dict())
