"""A run's readable report, ``report.md`` and ``report.html``, rendered from its run
record (``report.json``) and the files of its folder."""

from __future__ import annotations

import os
from pathlib import Path

from .. import __version__
from ..artifacts import read_json
from ..firmware_project import read_project
from ..mcu.boards import boards
from ..record import RunRecord, title
from ..runs import RunFolder
from ..tasks import get_task
from ..tflite.layers import LayerProfile, layers
from ..tflite.model_info import read_model
from . import document as d
from .cv import cv_section
from .data_checks import checks_section, leaks_section
from .new_data import new_data_sections
from .plots import plot_anomaly, plot_confusion, plot_layer_error, plot_run_curves
from .results import anomaly_curves, results_section, verdict_table

_RERUN = "re-run `tflmp train`"


def render_reports(run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` in ``run_dir`` from its
    ``report.json`` and files; figures go to ``plots/``. Returns (md path, html path)."""
    run = RunFolder(run_dir)
    rec = run.record()
    config = read_json(run.file(RunFolder.CONFIG), _RERUN, default={})
    rows = selected_layers(run)
    sections = [
        leaks_section(rec),
        d.section("summary", "Summary", d.cards(facts(rec, rows))),
        _data_section(run, rec),
        checks_section(rec),
        _training_section(run, rec, config),
        _doctor_section(rec),
        _ledger_section(rec, config),
        cv_section(rec),
        _RESULTS.get(rec.task, lambda run, rec: None)(run, rec),
        results_section(run, rec),
        _preparation_section(rec),
        _layers_section(rows),
        _memory_section(rec),
        *_measurement_sections(run, rec),
        *new_data_sections(run),
        _firmware_section(run, rec),
        _timings_section(rec),
    ]
    doc = {"title": f"{rec.model.name} on {rec.dataset.name}",
           "subtitle": [f"run {run.path.resolve()}",
                        f"{rec.task}; selected int8 model: {title(rec.selected)}; "
                        f"report.json schema {rec.to_dict()['schema_version']}, "
                        f"rendered by tflmp {__version__}"],
           "sections": [s for s in sections if s is not None]}
    return d.write_document(doc, run.file(RunFolder.REPORT_MD), run.file(RunFolder.REPORT_HTML))


def selected_layers(run: RunFolder) -> list[LayerProfile]:
    """The per-layer rows of the run's selected int8 model."""
    return layers(read_model(run.selected_model))


def facts(rec: RunRecord, rows: list[LayerProfile]) -> list[tuple[str, str]]:
    """The headline figures of a run (summary cards, first rows of a comparison)."""
    metric, chosen = rec.metric, rec.ledger.rows.get(rec.selected)
    return [("model", rec.model.name),
            ("parameters (Keras)", rec.model.params),
            ("dataset", rec.dataset.name),
            ("selected int8 model", title(rec.selected)),
            (f"float {metric}", d.metric(rec.ledger.rows["float"].value)),
            (f"int8 {metric} in TFLM", d.metric(chosen.value if chosen else None)),
            ("change vs float", "—" if chosen is None or chosen.change is None
             else f"{d.change(chosen.change)} {rec.ledger.unit}"),
            (".tflite size", d.nbytes(rec.model.tflite_bytes)),
            ("MACs per inference", f"{sum(r.macs for r in rows):,}"),
            ("arena, 32-bit MCU", d.nbytes(rec.model.arena_32bit.get("arena_bytes"))),
            ("arena, 64-bit host", d.nbytes(rec.model.arena_bytes)),
            ("total run time", d.seconds(rec.timings_s.get("total")))]


def data_facts(rec: RunRecord) -> list[tuple[str, str]]:
    ds = rec.dataset
    return [("task", rec.task),
            ("splits (train / val / test)", f"{ds.train:,} / {ds.val:,} / {ds.test:,}"),
            ("classes", d.fmt(ds.classes)),
            ("input shape", d.shape(ds.input_shape))]


def _data_section(run: RunFolder, rec: RunRecord) -> dict:
    pre = read_json(run.file(RunFolder.PREPROCESSING), _RERUN, default={})
    labels = pre.get("labels") or []
    pairs = [("name", rec.dataset.name), *data_facts(rec)]
    if labels:
        pairs.append(("labels", ", ".join(map(str, labels[:40]))
                      + (f" … ({len(labels) - 40} more)" if len(labels) > 40 else "")))
    for key, label in (("raw_dtype", "raw sample type"), ("scale", "scale"),
                       ("offset", "offset"), ("features", "feature extraction"),
                       ("sample_rate_hz", "sample rate (Hz)")):
        if pre.get(key) is not None:
            pairs.append((f"preprocessing: {label}", pre[key]))
    for side, t in (("input", rec.model.input), ("output", rec.model.output)):
        if t:
            pairs.append((f"int8 model {side}", f"{t['type']} {d.shape(t['shape'])}, scale "
                          f"{d.fmt(t['scale'])}, zero point {d.fmt(t['zero_point'])}"))
    notes = rec.dataset.notes
    return d.section("data", "Data", d.kv(pairs, "data-table"), d.items(notes) if notes else None)


def _training_section(run: RunFolder, rec: RunRecord, config: dict) -> dict:
    task = get_task(rec.task)
    t = rec.training
    curves = run.file(RunFolder.TRAINING_CURVES)
    if not curves.is_file():
        curves = plot_run_curves(run, task.curve_metric)
    phases = [[phase, p.get("epochs_run"), p.get("best_epoch"), p.get("best_value"),
               p.get("stopped_early")] for phase, p in t.phases.items()]
    settings = [("batch size", t.batch_size), ("optimizer", t.optimizer),
                ("learning rate", t.lr if not rec.lr_range else
                 f"{d.fmt(t.lr)} (--lr auto: {rec.lr_range['reason']})"),
                ("schedule", t.schedule),
                ("QAT learning rate", config.get("qat_lr") or "lr / 10"),
                ("epochs asked (float / QAT)",
                 f"{d.fmt(config.get('epochs'))} / {d.fmt(config.get('qat_epochs'))}"),
                ("seed", config.get("seed")),
                *([("recipe", f"{t.recipe} (settings not given on the command line)")]
                  if t.recipe else []),
                *([("QAT", t.qat_decision)] if t.qat_decision else [])]
    lr_plot = run.file(RunFolder.LR_RANGE_PLOT)
    return d.section("training", "Training",
                     d.figures(d.figure("loss and metric per epoch", curves),
                               *([d.figure("learning-rate range test", lr_plot)]
                                 if lr_plot.is_file() else [])) if curves
                     else d.text("No history CSVs in the run: no training curves."),
                     d.table(["phase", "epochs run", "best epoch",
                              "best " + task.monitor.replace("val_", "validation "),
                              "stopped early"], phases, table_id="phases-table"),
                     d.kv(settings))


def _doctor_section(rec: RunRecord) -> dict | None:
    """What ``tflmp doctor`` found (reports.diagnose), when anything fired."""
    if not rec.diagnosis:
        return None
    return d.section("doctor", "Doctor", d.items(
        [f"{f['severity']} {f['code']}: {f.get('problem', '')}: {f['evidence']} → try "
         f"{f['remedy']}" for f in rec.diagnosis]))


def _ledger_section(rec: RunRecord, config: dict) -> dict:
    metric = rec.metric
    unit = rec.ledger.unit
    rows = [[title(key), d.metric(row.value),
             d.metric(rec.scores.get(key, {}).get(f"val_{metric}")), d.change(row.change),
             "selected" if key == rec.selected else ""]
            for key, row in rec.ledger.rows.items()]
    limit = config.get("max_drop")
    return d.section("ledger", "Quantization ledger",
                     d.table(["model", f"test {metric}", f"val {metric}",
                              f"change vs float ({unit})", ""], rows, table_id="ledger-table",
                             marked=[r[-1] == "selected" for r in rows]),
                     d.text("Change vs float: positive = better than the float model"
                            + ("." if unit == "pp" else ", in percent of float's error."))
                     if len(rows) > 1 else None,
                     d.text(f"Selection: {rec.selection}.") if rec.selection else None,
                     None if limit is None else d.text(
                         f"tflmp train fails when the selected int8 model falls more than "
                         f"--max-drop {limit:g} "
                         + (f"point{'' if limit == 1 else 's'} below float." if unit == "pp"
                            else "% behind float.")))


def _confusion_section(run: RunFolder, rec: RunRecord) -> dict | None:
    shown = [("float", "confusion_float.png"), (rec.selected, "confusion_int8.png")]
    if not all("confusion" in rec.scores.get(k, {}) for k, _ in shown):
        return None
    pre = read_json(run.file(RunFolder.PREPROCESSING), _RERUN, default={})
    figs = [d.figure(title(key), plot_confusion(
        rec.scores[key]["confusion"], pre.get("labels") or [],
        f"{title(key)}: accuracy {rec.scores[key]['accuracy']:.4f}", run.plot(name)))
        for key, name in shown]
    return d.section("confusion", "Confusion matrices (test set)", d.figures(*figs),
                     d.text("Rows are the true classes, columns the predicted ones; the "
                            "colour is the share of the row."))


def _anomaly_section(run: RunFolder, rec: RunRecord) -> dict:
    keys = [k for k in rec.ledger.rows if k in rec.scores]
    rows = [[title(k), d.metric(rec.scores[k].get("auc")), rec.scores[k].get("mse_normal"),
             rec.scores[k].get("n")] for k in keys]
    path = plot_anomaly({title(k): rec.scores[k] for k in keys}, run.plot("anomaly.png"))
    return d.section("anomaly", "Anomaly detection (test set)",
                     d.figures(d.figure("AUC and reconstruction MSE", path)),
                     *anomaly_curves(run, rec),
                     d.table(["model", "AUC", "MSE, normal samples", "samples"], rows,
                             table_id="anomaly-table"),
                     d.text("The anomaly score is a sample's reconstruction mean squared "
                            "error; AUC of that score against the labels."),
                     *_threshold_blocks(rec.threshold))


def _threshold_blocks(threshold: dict | None) -> list[dict]:
    """The operating point the firmware uses, and what it gives on validation and test."""
    if threshold is None:
        return []
    return [d.text(f"Threshold: a score above {threshold['value']:.6g} is an anomaly "
                   f"({threshold['method']}); the firmware states it in its settings header "
                   "and prints a verdict with every score. Scores here are the ones the "
                   "device computes from the selected int8 model's tensors."),
            verdict_table(threshold)]


def _regression_section(run: RunFolder, rec: RunRecord) -> dict:
    keys = [k for k in rec.ledger.rows if k in rec.scores]
    rows = [[title(k), rec.scores[k].get("mae"), rec.scores[k].get("rmse"),
             rec.scores[k].get("r2"), rec.scores[k].get("n")] for k in keys]
    return d.section("regression", "Regression (test set)",
                     d.table(["model", "MAE", "RMSE", "R²", "samples"], rows,
                             table_id="regression-table"),
                     d.text("Errors in the target's units; R² is the share of the targets' "
                            "variance the model explains (1 = perfect)."))


# The results section of each task.
_RESULTS = {"classification": _confusion_section, "autoencoder": _anomaly_section,
            "regression": _regression_section}


def _preparation_section(rec: RunRecord) -> dict:
    prep = rec.int8_preparation
    return d.section(
        "int8-preparation", "int8 preparation",
        d.items(prep.rewrites) if prep.rewrites else d.text(
            "No rewrites: the trained model was quantizable as it was."),
        d.table(["layer left float during QAT", "reason"],
                [[n, r] for n, r in prep.float_during_qat], table_id="float-layers-table")
        if prep.float_during_qat else d.text("Every layer was quantized during QAT."))


def _layers_section(rows: list[LayerProfile]) -> dict:
    body = [[r.index, r.name, r.op, "; ".join(d.shape(s) for s in r.output_shapes), r.params,
             r.macs, r.activation_bytes] for r in rows]
    total = ["", f"{len(rows)} ops", "", "", sum(r.params for r in rows),
             sum(r.macs for r in rows), sum(r.activation_bytes for r in rows)]
    return d.section("layers", "Per-layer profile (model_int8.tflite)",
                     d.table(["#", "layer (output tensor)", "op", "output shape", "params",
                              "MACs", "activation bytes"], body, table_id="layers-table",
                             total=total),
                     d.text("MACs count the multiply-accumulates of convolutions, fully "
                            "connected, LSTM and batch matmul ops; the activation total adds "
                            "every op's output, not what is alive at once (the arena below)."))


def _memory_section(rec: RunRecord) -> dict:
    model, a32 = rec.model, rec.model.arena_32bit
    rows = [["flash: model_int8.tflite", d.nbytes(model.tflite_bytes),
             f"sha256 {model.sha256[:16]}…"],
            ["arena, 64-bit host", d.nbytes(model.arena_bytes), model.arena_basis],
            ["arena, 32-bit MCU (derived)", d.nbytes(a32.get("arena_bytes")),
             f"TFLM release {a32.get('profile', '?')}: arena_used_bytes "
             f"{d.fmt(a32.get('arena_used_bytes'))} = tensors {d.fmt(a32.get('planned_bytes'))}"
             f" + bookkeeping {d.fmt(a32.get('bookkeeping_bytes'))}; peak in the "
             f"{a32.get('binding_phase', '?')} phase; "
             + ("exact" if a32.get("exact") else "sized generously for unmeasured ops: "
                + d.fmt(a32.get("unmeasured_ops")))]]
    candidates = [[title(k), d.nbytes(c.get("tflite_bytes")), d.nbytes(c.get("arena_bytes"))]
                  for k, c in model.candidates.items()]
    return d.section("memory", "Memory",
                     d.table(["figure", "bytes", "basis"], rows, table_id="memory-table"),
                     d.table(["int8 candidate", ".tflite", "arena, 64-bit host"], candidates,
                             caption="both int8 conversions") if candidates else None,
                     d.text("The 64-bit host arena is what the TFLM Python interpreter needs "
                            "here (8-byte pointers); the firmware uses the 32-bit figure."))


def _measurement_sections(run: RunFolder, rec: RunRecord) -> list[dict]:
    """Parity, per-layer error, profile and board fit, present when the run has them."""
    out = []
    if rec.parity:
        out.append(d.section("parity", "Parity (int8 in TFLM vs references)",
                             *generic_blocks(rec.parity, "parity")))
    if rec.per_layer_error:
        path = plot_layer_error(rec.per_layer_error, run.plot("per_layer_error.png"))
        out.append(d.section("per-layer-error", "Per-layer quantization error",
                             d.figures(d.figure("RMSE of each layer's output, in units of its "
                                                "int8 scale", path)),
                             *generic_blocks(rec.per_layer_error, "per-layer-error")))
    if rec.profile:
        out.append(profile_section(rec.profile))
    if rec.board_fit:
        out.append(board_fit_section(rec.board_fit))
    return out


def profile_section(profile: dict) -> dict:
    """Totals, memory plan and flash with readable labels and units."""
    totals, m, f = profile.get("totals", {}), profile.get("memory", {}), profile.get("flash", {})
    release = m.get("arena_32bit_profile", "?")
    exact = "" if m.get("arena_32bit_exact", True) else ", estimated"
    pairs = [
        ("ops", totals.get("ops")), ("parameters", totals.get("params")),
        ("MACs per inference", totals.get("macs")),
        ("activation bytes, all ops", d.nbytes(totals.get("activation_bytes"))),
        ("memory peak at op", m.get("peak_op")),
        ("tensors alive at the peak", ", ".join(f"{b['tensor']} {b['bytes']:,} B"
                                                for b in m.get("live_at_peak", []))),
        ("lower bound (no planner needs less)", d.nbytes(m.get("lower_bound_bytes"))),
        ("offline plan in the model" if m.get("offline_planned") else "TFLM's planner",
         d.nbytes(m.get("planned_bytes"))),
        (f"arena, 32-bit MCU ({release}{exact})", d.nbytes(m.get("arena_32bit_bytes"))),
        ("arena above the lower bound", d.nbytes(m.get("gap_bytes"))),
        ("of which", m.get("gap_basis", "").split(": ", 1)[-1]),
        ("arena, 64-bit host", d.nbytes(m.get("arena_host_bytes"))),
        ("flash: model", d.nbytes(f.get("model_bytes"))),
        ("flash: TFLM code for the model's ops", d.nbytes(f.get("code_bytes"))),
        ("flash: code size basis", f.get("code_basis"))]
    return d.section("profile", "Profile", d.kv(pairs, "profile-table"))


def board_fit_section(rows: list[dict]) -> dict:
    """One row per board: the verdict, RAM, what the model and kernels add to flash next
    to what the framework leaves, and the latency band."""
    known = boards()
    body = []
    for r in rows:
        b = known.get(r.get("board"))
        if b is not None:
            framework = b.reserved_flash_bytes
            flash = (f"{r['flash_needed'] - framework:,} of {b.flash_bytes - framework:,} B")
        else:
            flash = f"{r.get('flash_needed', 0):,} of {r.get('flash', 0):,} B"
        why = "; ".join(r.get("reasons", []))
        verdict = "yes" if r.get("fits") else f"NO: {why}" if why else "NO"
        arena = f"{r['arena_bytes']:,} B ({r['tflm_release']})" if "arena_bytes" in r else "—"
        body.append([r.get("board"), verdict, arena,
                     f"{r.get('ram_needed', 0):,} of {r.get('ram', 0):,} B", flash,
                     r.get("latency_ms")])
    return d.section("board-fit", "Board fit",
                     d.table(["board", "fits", "arena (TFLM release)", "RAM needed",
                              "flash: model + TFLM code", "latency (ms)"], body,
                             table_id="board-fit-table"),
                     d.text("Arena: the 32-bit arena for the TFLM release the board links "
                            "(part of RAM needed). RAM: arena, input buffer, stack and what "
                            "the framework takes, "
                            "of the board's RAM. Flash: the model and TFLM's code for its "
                            "ops, of what the bootloader, other partitions and the core "
                            "leave. Latency: MACs x cycles per MAC of the board's kernels "
                            "at its clock (`tflmp profile --board B` shows the basis)."))


# Readable labels of the keys measurement documents use (the parity ladder and the
# per-layer error); other keys are shown with their underscores as spaces.
_LABELS = {
    "split_size": "samples", "rungs": "rungs", "rung": "rung", "accuracy": "accuracy",
    "auc": "AUC", "agreement_with_float": "agrees with float",
    "tflm_vs_tflite": "TFLM vs TFLite reference", "max_diff": "max difference (int8 steps)",
    "mean_diff": "mean difference (int8 steps)", "bit_exact_share": "bit-exact samples",
    "vs_tflite_ref_max_diff": "vs TFLite: max difference (int8 steps)",
    "vs_tflite_ref_mean_diff": "vs TFLite: mean difference (int8 steps)",
    "vs_tflite_ref_bit_exact_share": "vs TFLite: bit-exact samples",
    "disagreeing_samples": "samples that differ", "first_divergence": "first diverging op",
    "op_index": "op #", "op": "op", "tensor": "tensor", "layer": "layer",
    "scale": "output scale", "differing_share": "values that differ",
    "rmse_over_scale": "RMSE / output scale (int8 steps)",
}


def _label(key: str) -> str:
    """'tflm_vs_tflite.max_diff' -> 'TFLM vs TFLite reference: max difference (int8 steps)'."""
    return ": ".join(_LABELS.get(part, part.replace("_", " ")) for part in key.split("."))


def generic_blocks(value, name: str) -> list[dict]:
    """A table per list of dicts (id ``name-KEY``), one key/value table for the rest
    (id ``name-table``, nested keys joined), every key shown by its readable label."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = list(dict.fromkeys(k for row in value for k in row))
        return [d.table([_label(c) for c in columns],
                        [[row.get(c) for c in columns] for row in value],
                        table_id=f"{name}-table")]
    if not isinstance(value, dict):
        return [d.text(d.fmt(value))]
    pairs, tables = [], []
    for key, v in _flatten(value):
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.extend({**t, "caption": _label(key)}
                          for t in generic_blocks(v, f"{name}-{key.replace('.', '-')}"))
        else:
            pairs.append((_label(key), v))
    return ([d.kv(pairs, f"{name}-table")] if pairs else []) + tables


def _flatten(value: dict, prefix: str = ""):
    for key, v in value.items():
        if isinstance(v, dict) and v:
            yield from _flatten(v, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", v


def _firmware_section(run: RunFolder, rec: RunRecord) -> dict | None:
    projects = run.firmware_projects()
    if not projects:
        return None
    rows = []
    for folder in projects:
        p = read_project(folder)
        rows.append([p.target, folder.relative_to(run.path).as_posix(),
                     d.nbytes(p.arena.get("arena_bytes")), p.arena.get("tree") or
                     p.arena.get("profile"),
                     "run's model" if p.model_sha256 == rec.model.sha256
                     else "re-converted for this TFLM", p.golden.get("count"), p.notes])
    return d.section("firmware", "Firmware projects",
                     d.table(["target", "folder", "arena", "TFLM", "model", "golden vectors",
                              "notes"], rows, table_id="firmware-table"))


def _timings_section(rec: RunRecord) -> dict | None:
    timings = rec.timings_s
    if not timings:
        return None
    total = timings.get("total") or sum(timings.values())
    rows = [[stage, d.seconds(s), f"{100 * s / total:.0f} %" if total else "—"]
            for stage, s in timings.items() if stage != "total"]
    return d.section("timings", "Timings", d.table(["stage", "time", "share"], rows,
                                                   total=["total", d.seconds(total), ""]))
