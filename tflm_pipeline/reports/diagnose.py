"""What is wrong with a run and what to try: ``tflmp doctor`` and the end of ``tflmp train``.

Reads only the run folder's files (config.json, stages.json, history*.csv, report.json
with its ledger, confusion matrices, per-layer error and any ``data_checks``), never
TensorFlow.  One rule per finding; each :class:`Finding` carries the numbers it saw and
the tflmp option to try.  Every threshold is a named constant below.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..artifacts import read_json
from ..config import RunConfig
from ..errors import TflmpError
from ..record import FLOAT, RunRecord, title
from ..runs import RunFolder
from ..training.fit import read_history

# --- thresholds ---------------------------------------------------------------------------
EXPLODE_OVER_CHANCE = 3.0  # classification: an epoch's train loss above 3 x ln(classes) blew up
RISE_FACTOR = 1.25  # train loss ending 25 % above its earlier minimum is rising
FLAT_REL_CHANGE = 0.05  # train loss falling less than 5 % from first to last epoch is flat
# rates read as high / low for each optimizer (below LOW: too low; at or above HIGH: too high)
LR_BANDS = {"adam": (1e-5, 1e-2), "adamw": (1e-5, 1e-2), "sgd": (1e-4, 0.3)}
OVERFIT_GAP = 0.05  # train accuracy above validation accuracy by more than 5 points
VAL_LOSS_RISE = 0.20  # val_loss 20 % above its minimum while train loss kept falling,
RISE_EPOCHS = 2  # ... for at least the last 2 epochs (one bump at a high rate is noise)
UNDERFIT_ACCURACY = 0.90  # classification: train and best val accuracy both below this
UNDERFIT_R2 = 0.5  # regression: the float model's test R² below this
EARLY_BEST_EPOCH = 2  # early stopping whose best epoch was one of the first two
IMPROVING_SHARE = 0.25  # "still improving": judged over the last quarter of the epochs
IMPROVING_ACCURACY = 0.01  # ... gaining more than 1 point of val accuracy there
IMPROVING_LOSS = 0.05  # ... or val loss falling by more than 5 % there
MIN_TREND_EPOCHS = 3  # trends (overfitting, still improving) need this many epochs
IMBALANCE_RATIO = 5.0  # data checks: largest / smallest training class above this

SEVERITIES = ("error", "warning", "info")  # most to least urgent
# ops whose output scale TFLM fixes: their error comes from the layer feeding them
_FIXED_SCALE_OPS = {"SOFTMAX", "LOGISTIC", "TANH"}
_JOIN_OPS = {"ADD", "CONCATENATION", "MUL", "SUB"}
_WEIGHT_OPS = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"}


@dataclass
class Finding:
    """One thing wrong with a run: what, the evidence (numbers from its files) and the
    remedy (the option to try)."""

    code: str
    severity: str  # "error", "warning" or "info"
    problem: str  # what is wrong, in a few words
    evidence: str  # the numbers that show it
    remedy: str  # what to try: tflmp options first

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        return cls(d["code"], d["severity"], d.get("problem", ""), d["evidence"], d["remedy"])


@dataclass
class RunFacts:
    """What a diagnosis reads from a run folder."""

    config: RunConfig
    float_history: list[dict]
    qat_history: list[dict] = field(default_factory=list)
    stages: dict = field(default_factory=dict)
    record: RunRecord | None = None
    labels: list | None = None
    data_checks: object = None  # report.json "data_checks" (issue 14), as written
    classes: int | None = None
    task: str = "classification"

    @property
    def lr(self) -> float:
        if self.record is not None and self.record.training.lr:
            return self.record.training.lr
        return self.config.lr if isinstance(self.config.lr, (int, float)) else float("nan")


def read_facts(run: RunFolder, record: RunRecord | None = None) -> RunFacts:
    """The facts of ``run`` (``record``: the one being written, else report.json's)."""
    config = run.config
    float_history = read_history(run.history("float"))
    qat_history = read_history(run.history("qat"))
    if not float_history and not qat_history:
        raise TflmpError(f"{run.path} has no training history yet (history.csv); nothing to "
                         "diagnose: train or resume the run first")
    raw = read_json(run.file(RunFolder.REPORT), "re-run `tflmp train`") or {}
    if record is None and run.has_record:
        record = run.record()
    pre = run.preprocessing
    classes = (record.dataset.classes if record is not None
               else pre.num_classes if pre is not None else None)
    task = record.task if record is not None else (config.task or "classification")
    return RunFacts(config, float_history, qat_history, run.stages(), record,
                    list(pre.labels) if pre is not None and pre.labels else None,
                    raw.get("data_checks"), classes, task)


def diagnose(run: RunFolder, record: RunRecord | None = None) -> list[Finding]:
    """Every finding of the run folder ``run``, most urgent first."""
    return diagnose_facts(read_facts(run, record))


def diagnose_facts(facts: RunFacts) -> list[Finding]:
    found: list[Finding] = []
    for rule in RULES:
        result = rule(facts, found)
        if result:
            found.extend(result if isinstance(result, list) else [result])
    return sorted(found, key=lambda f: SEVERITIES.index(f.severity))


# --- helpers -----------------------------------------------------------------------------

def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _chance_loss(facts: RunFacts) -> float | None:
    if facts.task == "classification" and facts.classes and facts.classes > 1:
        return math.log(facts.classes)
    return None


def _lower_lr(facts: RunFacts, factor: float = 10) -> str:
    lr = facts.lr
    lower = f"--lr {lr / factor:.2g}" if math.isfinite(lr) else "a lower --lr"
    if facts.config.lr_auto:
        return f"{lower} (below the range test's choice; see plots/lr_range.png)"
    return f"{lower}, or --lr auto (a range test picks the rate)"


def _lr_band(facts: RunFacts) -> tuple[float, float]:
    return LR_BANDS.get(facts.config.optimizer, LR_BANDS["adam"])


def _codes(found: list[Finding]) -> set[str]:
    return {f.code for f in found}


def _class_name(facts: RunFacts, i: int) -> str:
    if facts.labels and i < len(facts.labels) and str(facts.labels[i]) != str(i):
        return f"{i} ('{facts.labels[i]}')"
    return str(i)


def _is_image(facts: RunFacts) -> bool:
    shape = facts.record.dataset.input_shape if facts.record is not None else []
    return len(shape) == 3 and min(shape[:2]) >= 8


# --- rules (each returns a Finding, a list of them, or None) ----------------------------

def nan_loss(facts: RunFacts, found) -> Finding | None:
    """A NaN or infinite loss: the rate is far too high."""
    for phase, rows in (("float", facts.float_history), ("QAT", facts.qat_history)):
        for r in rows:
            bad = [k for k in ("loss", "val_loss") if k in r and not math.isfinite(r[k])]
            if bad:
                return Finding("nan_loss", "error", "learning rate far too high",
                               f"{phase} {bad[0]} is {r[bad[0]]} at epoch {int(r['epoch']) + 1}",
                               _lower_lr(facts))
    return None


def diverging(facts: RunFacts, found) -> Finding | None:
    """The train loss blew up (far above chance) or rose over the epochs."""
    rows = facts.float_history
    if not rows or "nan_loss" in _codes(found):
        return None
    losses = [r["loss"] for r in rows]
    chance = _chance_loss(facts)
    worst = max(range(len(losses)), key=lambda i: losses[i])
    if chance is not None and losses[worst] > EXPLODE_OVER_CHANCE * chance:
        return Finding("diverging", "error", f"learning rate {facts.lr:.2g} too high",
                       f"train loss reached {_fmt(losses[worst])} at epoch {worst + 1}, "
                       f"{_fmt(losses[worst] / chance)}x the chance level ln({facts.classes}) = "
                       f"{chance:.2f}; it ended at {_fmt(losses[-1])}", _lower_lr(facts))
    low = min(range(len(losses)), key=lambda i: losses[i])
    if low < len(losses) - 1 and losses[-1] > RISE_FACTOR * losses[low]:
        return Finding("diverging", "error", f"learning rate {facts.lr:.2g} too high",
                       f"train loss rose from {_fmt(losses[low])} at epoch {low + 1} to "
                       f"{_fmt(losses[-1])} at epoch {len(losses)}", _lower_lr(facts))
    return None


def flat_loss(facts: RunFacts, found) -> Finding | None:
    """The train loss barely moved from the first epoch on."""
    rows = facts.float_history
    if len(rows) < 2 or {"nan_loss", "diverging"} & _codes(found):
        return None
    first, last = rows[0]["loss"], rows[-1]["loss"]
    if first <= 0 or (first - last) / first >= FLAT_REL_CHANGE:
        return None
    chance = _chance_loss(facts)
    at_chance = ""
    if chance is not None and last >= 0.9 * chance:
        acc = rows[-1].get("accuracy")
        at_chance = (f", at the chance level ln({facts.classes}) = {chance:.2f}"
                     + (f" (train accuracy {acc:.2f})" if acc is not None else ""))
    evidence = (f"train loss {_fmt(first)} at epoch 1 and {_fmt(last)} at epoch {len(rows)} "
                f"(down {(first - last) / first:.1%}){at_chance}")
    low, high = _lr_band(facts)
    lr = facts.lr
    if lr >= high:
        problem = (f"learning rate {lr:.2g} too high for {facts.config.optimizer}: the units "
                   "died in the first steps")
        remedy = _lower_lr(facts)
    elif lr <= low:
        problem = f"learning rate {lr:.2g} too low to move the weights"
        remedy = f"--lr {lr * 100:.2g}, or --lr auto (a range test picks the rate)"
    else:
        problem = "loss flat from the start: learning rate too low, or dead inputs"
        remedy = ("--lr auto; check that the inputs are not constant and the labels match "
                  "the samples")
    return Finding("flat_loss", "error" if at_chance else "warning", problem, evidence, remedy)


def overfitting(facts: RunFacts, found) -> Finding | None:
    """Validation gets worse while training gets better, or train >> validation."""
    rows = facts.float_history
    if len(rows) < MIN_TREND_EPOCHS or {"nan_loss", "diverging", "flat_loss"} & _codes(found):
        return None
    evidence = None
    val = [r.get("val_loss", math.nan) for r in rows]
    finite = [i for i, v in enumerate(val) if math.isfinite(v)]
    if finite:
        best = min(finite, key=lambda i: (val[i], -i))  # the latest of equal minima
        if (best <= len(rows) - 1 - RISE_EPOCHS
                and all(v > val[best] for v in val[-RISE_EPOCHS:])
                and val[-1] > (1 + VAL_LOSS_RISE) * val[best]
                and rows[-1]["loss"] < rows[best]["loss"]):
            evidence = (f"val_loss rose from {_fmt(val[best])} at epoch {best + 1} to "
                        f"{_fmt(val[-1])} at epoch {len(rows)} while loss fell to "
                        f"{_fmt(rows[-1]['loss'])}")
    last = rows[-1]
    if evidence is None and "accuracy" in last and "val_accuracy" in last:
        gap = last["accuracy"] - last["val_accuracy"]
        if gap > OVERFIT_GAP:
            evidence = (f"train accuracy {last['accuracy']:.3f} vs val accuracy "
                        f"{last['val_accuracy']:.3f} at epoch {len(rows)} "
                        f"({gap * 100:.1f} points apart)")
    if evidence is None:
        return None
    tips = []
    if _is_image(facts) and not facts.config.augment:
        tips.append("--augment shift=0.1,rotate=10")
    tips += ["a smaller --model (tflmp models)",
             "Dropout or L2 regularization in your model (--model path.py)"]
    if facts.config.patience > 4:
        tips.append(f"--patience {max(3, facts.config.patience // 2)} (the best epoch is kept)")
    return Finding("overfitting", "warning", "validation lags training", evidence,
                   "; ".join(tips))


def _improvement(facts: RunFacts) -> str | None:
    """How the validation metric improved over the last epochs, or None when flat."""
    rows = facts.float_history
    if len(rows) < MIN_TREND_EPOCHS:
        return None
    k = max(1, round(len(rows) * IMPROVING_SHARE))
    before, last = rows[-1 - k], rows[-1]
    if "val_accuracy" in last:
        gain = last["val_accuracy"] - before["val_accuracy"]
        if gain > IMPROVING_ACCURACY:
            return (f"val accuracy rose {gain * 100:.1f} points over the last {k} epoch(s) "
                    f"({before['val_accuracy']:.3f} -> {last['val_accuracy']:.3f})")
        return None
    if "val_loss" in last and before["val_loss"] > 0:
        fall = (before["val_loss"] - last["val_loss"]) / before["val_loss"]
        if fall > IMPROVING_LOSS:
            return (f"val_loss fell {fall:.0%} over the last {k} epoch(s) "
                    f"({_fmt(before['val_loss'])} -> {_fmt(last['val_loss'])})")
    return None


def _ran_all_epochs(facts: RunFacts) -> bool:
    stage = facts.stages.get("float", {})
    return (not stage.get("stopped_early", False)
            and len(facts.float_history) >= facts.config.epochs)


def underfitting(facts: RunFacts, found) -> Finding | None:
    """Both training and validation scores are low."""
    if {"nan_loss", "diverging", "flat_loss", "overfitting"} & _codes(found):
        return None
    rows = facts.float_history
    more = f"--epochs {facts.config.epochs * 2}"
    if facts.task == "classification" and rows and "val_accuracy" in rows[-1]:
        train_acc = rows[-1].get("accuracy", 0.0)
        best_val = max(r["val_accuracy"] for r in rows)
        if train_acc >= UNDERFIT_ACCURACY or best_val >= UNDERFIT_ACCURACY:
            return None
        evidence = (f"train accuracy {train_acc:.3f} and best val accuracy {best_val:.3f}, both "
                    f"below {UNDERFIT_ACCURACY:.2f}")
    elif facts.task == "regression" and facts.record is not None:
        r2 = facts.record.scores.get(FLOAT, {}).get("r2")
        if r2 is None or r2 >= UNDERFIT_R2:
            return None
        evidence = f"the float model explains little of the targets: test R² {r2:.3f}"
    else:
        return None
    improving = _improvement(facts) if _ran_all_epochs(facts) else None
    if improving:
        evidence += f"; {improving}"
        remedy = f"{more} (it was still improving), then a bigger --model (tflmp models)"
    else:
        remedy = f"a bigger --model (tflmp models) or {more}" + (
            "" if facts.config.lr_auto else "; --lr auto")
    return Finding("underfitting", "warning", "train and validation both low",
                   evidence, remedy)


def still_improving(facts: RunFacts, found) -> Finding | None:
    """Training ended while the validation metric was still getting better."""
    if {"nan_loss", "diverging", "flat_loss", "underfitting"} & _codes(found):
        return None
    if not _ran_all_epochs(facts):
        return None
    improving = _improvement(facts)
    if improving is None:
        return None
    return Finding("still_improving", "info", "training ended while still improving",
                   f"all {facts.config.epochs} epochs ran and {improving}",
                   f"--epochs {facts.config.epochs * 2} (early stopping ends it when it stops "
                   "improving)")


def early_stop(facts: RunFacts, found) -> Finding | None:
    """Early stopping ended training and the best epoch was one of the first."""
    stage = facts.stages.get("float")
    if (not stage or not stage.get("stopped_early")
            or stage.get("best_epoch", 99) > EARLY_BEST_EPOCH):
        return None
    monitor = "val_accuracy" if facts.task == "classification" else "val_loss"
    return Finding("early_stop", "warning", "early stopping at the first epochs",
                   f"early stopping ended training at epoch {stage['epochs_run']} of "
                   f"{facts.config.epochs}; the best {monitor} ({stage['best_value']:.4g}) was "
                   f"at epoch {stage['best_epoch']}",
                   f"{_lower_lr(facts, 3)}; or --schedule cosine (the rate overshoots after "
                   "the first epochs)")


def int8_drop(facts: RunFacts, found) -> Finding | None:
    """The selected int8 model loses more than --max-drop against float."""
    rec = facts.record
    if rec is None or rec.selected not in rec.ledger.rows:
        return None
    row, base = rec.selected_row, rec.ledger.rows.get(FLOAT)
    threshold = facts.config.max_drop
    if row.drop is None or row.drop <= threshold or base is None:
        return None
    unit = "points" if rec.ledger.unit == "pp" else "% of float's error"
    evidence = (f"{title(rec.selected)} {rec.metric} {row.value:.4f} vs float {base.value:.4f}: "
                f"{row.drop:.2f} {unit} lost, more than --max-drop {threshold:g}")
    c = facts.config
    if c.qat_epochs == 0:
        tips = ["--qat-epochs 3 (quantization-aware fine-tuning)"]
    else:
        qat_lr = c.qat_lr or facts.lr / 10
        tips = [f"--qat-epochs {c.qat_epochs * 2}",
                f"--qat-lr {qat_lr / 2:.2g}" if math.isfinite(qat_lr) else "a lower --qat-lr"]
    layer = _worst_layer(rec.per_layer_error)
    if layer is not None:
        evidence += (f"; layer {layer['layer']} ({layer['op']}) has the largest quantization "
                     f"error, {layer['rmse_over_scale']:.2f} int8 steps RMSE")
        tips.append(_rewrite_tip(layer))
    else:
        tips.append(f"`tflmp verify {rec.run_dir or 'RUN'} --ladder` names the layer that "
                    "quantizes worst")
    return Finding("int8_drop", "error", "int8 model loses too much", evidence,
                   "; ".join(tips))


def _worst_layer(rows: list[dict] | None) -> dict | None:
    rows = [r for r in rows or [] if r.get("op") not in _FIXED_SCALE_OPS
            and r.get("rmse_over_scale") is not None]
    return max(rows, key=lambda r: r["rmse_over_scale"]) if rows else None


def _rewrite_tip(layer: dict) -> str:
    name, op = layer["layer"], layer["op"]
    if op in _JOIN_OPS:
        return (f"{name} joins inputs of very different ranges under one int8 scale: add "
                "BatchNormalization on each branch before it")
    if op in _WEIGHT_OPS:
        return (f"bound {name}'s output range: ReLU6 instead of ReLU after it, or "
                "BatchNormalization before its activation (tflmp folds it into the weights)")
    return f"narrow the range of the values {name} produces (a bounded activation before it)"


def class_never_predicted(facts: RunFacts, found) -> Finding | None:
    """Classes with test samples that the selected int8 model never predicts (not
    reported when training itself failed: that is the cause)."""
    rec = facts.record
    if (rec is None or facts.task != "classification"
            or {"nan_loss", "diverging", "flat_loss"} & _codes(found)):
        return None
    confusion = rec.scores.get(rec.selected, {}).get("confusion")
    if not confusion:
        return None
    missing = [i for i, row in enumerate(confusion)
               if sum(row) > 0 and sum(r[i] for r in confusion) == 0]
    if not missing:
        return None
    float_confusion = rec.scores.get(FLOAT, {}).get("confusion") or []
    by_float = {i: sum(r[i] for r in float_confusion) for i in missing
                if i < len(float_confusion)}
    names = ", ".join(f"{_class_name(facts, i)} ({sum(confusion[i])} test samples)"
                      for i in missing)
    evidence = f"{title(rec.selected)} never predicts class {names}"
    if any(by_float.values()):
        evidence += " (float predicts " + ", ".join(
            f"{_class_name(facts, i)} {n} times" for i, n in by_float.items() if n) + ")"
        remedy = f"more QAT: --qat-epochs {max(3, facts.config.qat_epochs * 2)}"
    else:
        train_counts = ((facts.data_checks or {}).get("class_counts") or {}).get("train") \
            if isinstance(facts.data_checks, dict) else None
        if train_counts:
            evidence += "; training samples: " + ", ".join(
                f"{_class_name(facts, i)} {train_counts[i]}" for i in missing
                if i < len(train_counts))
        remedy = (f"check those classes' training samples (how many, labelled right); "
                  f"--epochs {facts.config.epochs * 2}"
                  + ("; --augment shift=0.1,rotate=10" if _is_image(facts)
                     and not facts.config.augment else ""))
    return Finding("class_never_predicted", "warning", "a class is never predicted", evidence,
                   remedy)


def data_checks(facts: RunFacts, found) -> list[Finding]:
    """What the data checks recorded in report.json (``data.checks.DataChecks``, when
    they ran) says about the scores: leaks, label conflicts, imbalance, missing values,
    constant channels.  A run without them is skipped silently."""
    c = facts.data_checks
    if isinstance(c, list):  # a plain list of findings
        return [f for f in map(_listed_check, c) if f is not None]
    if not isinstance(c, dict):
        return []
    out = [Finding("data:leak", "warning", "the test score is optimistic", leak,
                   "keep --duplicates drop, and split by group (--group-column) when "
                   "samples come in sessions")
           for leak in c.get("leaks") or []]
    if c.get("label_conflicts"):
        out.append(Finding("data:label_conflicts", "warning", "identical samples, different labels",
                           f"{c['label_conflicts']} copies of one sample carry different "
                           "labels", "fix the labels at the source"))
    ratio = c.get("imbalance_ratio")
    if ratio is not None and ratio > IMBALANCE_RATIO:
        out.append(Finding("data:imbalance", "warning", "classes very unequal",
                           f"the largest training class is {ratio:.1f}x the smallest",
                           "--class-weight auto; or collect more of the small classes"))
    missing = {k: v for k, v in (c.get("missing") or {}).items() if v}
    if missing:
        out.append(Finding("data:missing", "warning", "missing values",
                           "NaN in " + ", ".join(f"{k} ({v})" for k, v in missing.items()),
                           "--missing interpolate or --missing drop"))
    constant = c.get("constant_channels") or []
    if constant:
        out.append(Finding("data:constant_channels", "info", "inputs that never change",
                           "constant channel(s): " + ", ".join(map(str, constant)),
                           "leave them out (--columns): they cost inputs and carry nothing"))
    return out


def _listed_check(c) -> Finding | None:
    if not isinstance(c, dict) or str(c.get("status", "")).lower() in ("ok", "pass", "passed"):
        return None
    text = c.get("evidence") or c.get("message")
    if not text:
        return None
    code = c.get("code") or c.get("name") or "check"
    severity = str(c.get("severity", "warning")).lower()
    return Finding(f"data:{code}", severity if severity in SEVERITIES else "warning",
                   str(c.get("problem") or f"data check {code}"), str(text),
                   str(c.get("remedy") or "see the data checks in report.md"))


RULES = (nan_loss, diverging, flat_loss, overfitting, underfitting, still_improving, early_stop,
         int8_drop, class_never_predicted, data_checks)
