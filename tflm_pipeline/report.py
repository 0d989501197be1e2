"""Report stage: ``report.json`` (the machine-readable source of truth), the training
curves plot, ``manifest.json`` (what produced the run, and every artifact's hash), and
the readable ``report.md`` / ``report.html`` and two-run comparisons rendered from them.

A rendered report is a document of sections made of blocks (text, list, key/value,
table, figures, cards); the jinja2 templates in ``report_templates/`` lay the same
document out as Markdown (images as files in ``plots/``) and as one self-contained HTML
file (images embedded, inline CSS, nothing fetched).
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .artifacts import atomic_path, sha256_file, write_json, write_text
from .errors import TflmpError

SCHEMA_VERSION = 1
TEMPLATE_DIR = Path(__file__).with_name("report_templates")
PLOTS = "plots"
_PACKAGES = ("tflmp", "tensorflow", "tensorflow-cpu", "tf-keras",
             "tensorflow-model-optimization", "tflite-micro", "numpy", "scikit-learn")
_REQUIRED = ("task", "dataset", "metrics", "ledger", "model")
_MODEL_LABELS = {"float": "float (Keras)", "qat_keras": "QAT (Keras, fake-quant)",
                 "ptq_int8_tflm": "PTQ int8 in TFLM", "qat_int8_tflm": "QAT int8 in TFLM"}
_NUMERIC = re.compile(r"[+-]?[\d,]*\.?\d+(e[+-]?\d+)?( ?(B|s|%|pp))?|—")


def package_versions() -> dict:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def write_report(run_dir: Path, report: dict) -> Path:
    return write_json(run_dir / "report.json", {"schema_version": SCHEMA_VERSION, **report})


def plot_training_curves(histories: dict[str, list[dict]], path: Path,
                         metric: str | None = "accuracy") -> Path:
    """Loss (and ``metric``) per epoch for each phase (float, QAT), train and validation."""
    plt = _pyplot()
    keys = ("loss", metric) if metric else ("loss",)
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8), squeeze=False)
    axes = axes[0]
    offset = 0
    for phase, rows in histories.items():
        if not rows:
            continue
        epochs = [offset + int(r["epoch"]) + 1 for r in rows]
        for ax, key in zip(axes, keys):
            ax.plot(epochs, [r[key] for r in rows], marker="o", ms=3, label=f"{phase} train")
            ax.plot(epochs, [r[f"val_{key}"] for r in rows], marker="o", ms=3, ls="--",
                    label=f"{phase} val")
        offset = epochs[-1]
    for ax, key in zip(axes, keys):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    fig.suptitle("Training curves (QAT epochs follow the float epochs)")
    return _save(fig, path)


def plot_run_curves(run_dir: Path, task: str) -> Path | None:
    """Draw ``plots/training_curves.png`` from a run's history CSVs (None without any)."""
    from .train import read_history

    histories = {"float": read_history(run_dir / "history.csv"),
                 "QAT": read_history(run_dir / "history_qat.csv")}
    if not any(histories.values()):
        return None
    return plot_training_curves(histories, run_dir / PLOTS / "training_curves.png",
                                metric="accuracy" if task == "classification" else None)


def write_manifest(run_dir: Path, *, config: dict, data_fingerprint: dict, command: list[str],
                   seed: int) -> Path:
    """Versions, seed, data hashes, command line and sha256 of every artifact."""
    artifacts = {}
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir).as_posix()
        if path.is_file() and rel != "manifest.json" and not rel.startswith(
                ("checkpoints/", "tensorboard/")) and not path.name.startswith("."):
            artifacts[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "seed": seed,
        "config": config,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "data_sha256": data_fingerprint,
        "artifacts": artifacts,
    }
    return write_json(run_dir / "manifest.json", manifest)


def read_report(run_dir: str | os.PathLike) -> dict:
    """A run folder's ``report.json``, checked to be a finished run's."""
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise TflmpError(f"{run_dir} has no report.json; train a run there with `tflmp train "
                         f"--out {run_dir}` (it renders the report), or pass a finished run "
                         "folder to `tflmp report`")
    rep = _read_json(path, "re-run `tflmp train`")
    missing = [k for k in _REQUIRED if k not in rep]
    if missing:
        raise TflmpError(f"{path} lacks {', '.join(missing)} (written by an older tflmp); "
                         "re-run `tflmp train`")
    return rep


def render_reports(run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.md`` and a self-contained ``report.html`` in ``run_dir`` from its
    ``report.json`` and files; figures go to ``plots/``. Returns (md path, html path)."""
    from . import __version__

    run_dir = Path(run_dir)
    rep = read_report(run_dir)
    config = _read_json(run_dir / "config.json", "re-run `tflmp train`", optional=True)
    layers = _layers(run_dir)
    metrics, model = rep["metrics"], rep["model"]
    selected = metrics.get("selected", "")
    sections = [
        _section("summary", "Summary", _cards(_facts(rep, layers))),
        _data_section(run_dir, rep),
        _training_section(run_dir, rep, config),
        _ledger_section(rep, config),
        _results_section(run_dir, rep),
        _preparation_section(rep),
        _layers_section(layers),
        _memory_section(model),
        *_extra_sections(run_dir, rep),
        _firmware_section(run_dir, model),
        _timings_section(rep),
    ]
    doc = {"title": f"{model['name']} on {rep['dataset']['name']}",
           "subtitle": [f"run {run_dir.resolve()}",
                        f"{rep['task']}; selected int8 model: {_label(selected)}; "
                        f"report.json schema {rep.get('schema_version', '?')}, "
                        f"rendered by tflmp {__version__}"],
           "sections": [s for s in sections if s is not None]}
    return _write_document(doc, run_dir / "report.md", run_dir / "report.html")


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike,
                 out_path: str | os.PathLike | None = None) -> Path:
    """Write ``compare.md`` and ``compare.html`` for two runs side by side; returns the
    HTML path. ``out_path``: a folder (or None, the current one) or a file name whose
    stem both files take."""
    dirs = [Path(run_a), Path(run_b)]
    reps = [read_report(d) for d in dirs]
    configs = [_read_json(d / "config.json", "re-run `tflmp train`", optional=True)
               for d in dirs]
    names = [d.name for d in dirs] if dirs[0].name != dirs[1].name else [str(d) for d in dirs]
    heads = [f"A: {names[0]}", f"B: {names[1]}"]
    facts = [dict(_facts(r, _layers(d)) + _data_facts(r)) for d, r in zip(dirs, reps)]
    fact_rows = [[k, facts[0].get(k, "—"), facts[1].get(k, "—")]
                 for k in dict.fromkeys([*facts[0], *facts[1]])]
    stages = list(dict.fromkeys([*reps[0].get("timings_s", {}), *reps[1].get("timings_s", {})]))
    timing_rows = [[s, *(_seconds(r.get("timings_s", {}).get(s)) for r in reps)] for s in stages]
    differing = [[k, *(_fmt(c.get(k)) for c in configs)]
                 for k in dict.fromkeys([*configs[0], *configs[1]])
                 if configs[0].get(k) != configs[1].get(k)]
    curves = [_figure(f"{h}: training curves", d / PLOTS / "training_curves.png")
              for h, d in zip(heads, dirs) if (d / PLOTS / "training_curves.png").is_file()]
    sections = [
        _section("runs", "Runs", _table(["", *heads], fact_rows, table_id="runs-table",
                                        marked=[a != b for _, a, b in fact_rows]),
                 _text("Rows that differ are highlighted (bold in Markdown).")),
        _section("ledger", "Quantization ledger (test set)", _compare_ledger(reps, heads)),
        _section("timings", "Timings", _table(["stage", *heads], timing_rows)),
        _section("config", "Config differences (config.json)",
                 _table(["key", *heads], differing, table_id="config-diff-table") if differing
                 else _text("config.json is the same in both runs.")),
        _section("curves", "Training curves", _figures(*curves)) if curves else None,
    ]
    doc = {"title": f"{names[0]} vs {names[1]}",
           "subtitle": [f"A: {dirs[0].resolve()}", f"B: {dirs[1].resolve()}"],
           "sections": [s for s in sections if s is not None]}
    html_path, md_path = _compare_paths(out_path)
    return _write_document(doc, md_path, html_path)[1]


# --- document blocks (the templates render each kind) ---------------------------------

def _section(section_id: str, title: str, *blocks) -> dict:
    return {"id": section_id, "title": title, "blocks": [b for b in blocks if b is not None]}


def _text(text: str) -> dict:
    return {"kind": "text", "text": text}


def _items(items: list[str]) -> dict:
    return {"kind": "list", "entries": items}


def _kv(pairs, table_id: str = "") -> dict:
    return {"kind": "kv", "id": table_id, "rows": [[k, _fmt(v)] for k, v in pairs]}


def _cards(pairs) -> dict:
    return {"kind": "cards", "rows": [[k, _fmt(v)] for k, v in pairs]}


def _table(columns: list[str], rows: list[list], *, table_id: str = "", caption: str = "",
           total: list | None = None, marked: list[bool] | None = None) -> dict:
    """A table of formatted cells; columns of numbers are right-aligned."""
    rows = [[_fmt(c) for c in row] for row in rows]
    total = [_fmt(c) for c in total] if total else None
    numeric = [bool(rows) and all(_NUMERIC.fullmatch(r[i]) for r in rows)
               and any(r[i] != "—" for r in rows) for i in range(len(columns))]
    return {"kind": "table", "id": table_id, "caption": caption, "columns": columns,
            "rows": rows, "numeric": numeric, "total": total,
            "marked": marked or [False] * len(rows)}


def _figures(*figures: dict) -> dict:
    return {"kind": "figures", "figures": list(figures)}


def _figure(title: str, path: Path) -> dict:
    return {"title": title, "path": path}


def _fmt(value) -> str:
    """A value as table text: thousands separators, 4 significant digits, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value) if value else "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) if value else "—"
    return str(value)


def _metric(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _bytes(value) -> str:
    return "—" if value is None else f"{value:,} B"


def _seconds(value) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _shape(shape) -> str:
    return "×".join(str(d) for d in shape)


def _label(key: str) -> str:
    return _MODEL_LABELS.get(key, key)


# --- sections of a run's report ------------------------------------------------------

def _facts(rep: dict, layers) -> list[tuple[str, str]]:
    """The headline figures of a run (summary cards, first rows of a comparison)."""
    model, ledger, metrics = rep["model"], rep["ledger"], rep["metrics"]
    metric, selected = ledger["metric"], metrics.get("selected", "")
    chosen = ledger.get(selected, {})
    a32 = model.get("arena_32bit", {})
    return [("model", model["name"]),
            ("parameters (Keras)", model.get("params")),
            ("dataset", rep["dataset"]["name"]),
            ("selected int8 model", _label(selected)),
            (f"float {metric}", _metric(ledger["float"][metric])),
            (f"int8 {metric} in TFLM", _metric(chosen.get(metric))),
            ("drop vs float", "—" if "drop_pp" not in chosen else f"{chosen['drop_pp']:+.2f} pp"),
            (".tflite size", _bytes(model.get("tflite_bytes"))),
            ("MACs per inference", f"{sum(r.macs for r in layers):,}"),
            ("arena, 32-bit MCU", _bytes(a32.get("arena_bytes"))),
            ("arena, 64-bit host", _bytes(model.get("arena_bytes"))),
            ("total run time", _seconds(rep.get("timings_s", {}).get("total")))]


def _data_facts(rep: dict) -> list[tuple[str, str]]:
    d = rep["dataset"]
    return [("task", rep["task"]),
            ("splits (train / val / test)",
             " / ".join(f"{d.get(s, 0):,}" for s in ("train", "val", "test"))),
            ("classes", _fmt(d.get("classes"))),
            ("input shape", _shape(d.get("input_shape", [])))]


def _data_section(run_dir: Path, rep: dict) -> dict:
    d, model = rep["dataset"], rep["model"]
    pre = _read_json(run_dir / "preprocessing.json", "re-run `tflmp train`", optional=True)
    labels = pre.get("labels") or []
    pairs = [("name", d["name"]), *_data_facts(rep)]
    if labels:
        pairs.append(("labels", ", ".join(map(str, labels[:40]))
                      + (f" … ({len(labels) - 40} more)" if len(labels) > 40 else "")))
    for key in ("raw_dtype", "scale", "offset", "features"):
        if pre.get(key) is not None:
            pairs.append((f"preprocessing: {key}", pre[key]))
    for side in ("input", "output"):
        t = model.get(side)
        if t:
            pairs.append((f"int8 model {side}", f"{t['type']} {_shape(t['shape'])}, scale "
                          f"{_fmt(t['scale'])}, zero point {_fmt(t['zero_point'])}"))
    notes = d.get("notes") or []
    return _section("data", "Data", _kv(pairs, "data-table"), _items(notes) if notes else None)


def _training_section(run_dir: Path, rep: dict, config: dict) -> dict:
    from .tasks import TASKS

    t = rep.get("training", {})
    curves = run_dir / PLOTS / "training_curves.png"
    if not curves.is_file():
        curves = plot_run_curves(run_dir, rep["task"])
    monitor = TASKS[rep["task"]].monitor if rep["task"] in TASKS else "best value"
    phases = [[phase, p.get("epochs_run"), p.get("best_epoch"), p.get("best_value"),
               p.get("stopped_early")] for phase, p in t.items() if isinstance(p, dict)]
    settings = [("batch size", t.get("batch_size")), ("optimizer", t.get("optimizer")),
                ("learning rate", t.get("lr")),
                ("QAT learning rate", config.get("qat_lr") or "lr / 10"),
                ("epochs asked (float / QAT)",
                 f"{_fmt(config.get('epochs'))} / {_fmt(config.get('qat_epochs'))}"),
                ("seed", config.get("seed"))]
    return _section("training", "Training",
                    _figures(_figure("loss and metric per epoch", curves)) if curves
                    else _text("No history CSVs in the run: no training curves."),
                    _table(["phase", "epochs run", "best epoch", f"best {monitor}",
                            "stopped early"], phases, table_id="phases-table"),
                    _kv(settings))


def _ledger_section(rep: dict, config: dict) -> dict:
    ledger, metrics = rep["ledger"], rep["metrics"]
    metric, selected = ledger["metric"], metrics.get("selected", "")
    rows = [[_label(key), _metric(entry.get(metric)),
             _metric(metrics.get(key, {}).get(f"val_{metric}")),
             "—" if "drop_pp" not in entry else f"{entry['drop_pp']:+.2f}",
             "selected" if key == selected else ""]
            for key, entry in ledger.items() if key != "metric"]
    limit = config.get("max_drop")
    return _section("ledger", "Quantization ledger",
                    _table(["model", f"test {metric}", f"val {metric}",
                            "drop vs float (pp)", ""], rows, table_id="ledger-table",
                           marked=[r[-1] == "selected" for r in rows]),
                    _text(f"Selection: {metrics['selection']}.") if metrics.get("selection")
                    else None,
                    None if limit is None else _text(
                        f"tflmp train fails when the selected int8 model falls more than "
                        f"--max-drop {limit:g} point{'' if limit == 1 else 's'} below float."))


def _results_section(run_dir: Path, rep: dict) -> dict | None:
    """Confusion matrices (classification) or the anomaly scores (autoencoder)."""
    metrics, selected = rep["metrics"], rep["metrics"].get("selected", "")
    runs = [("float", "confusion_float.png"), (selected, "confusion_int8.png")]
    if rep["task"] == "classification" and all(
            "confusion" in metrics.get(k, {}) for k, _ in runs):
        pre = _read_json(run_dir / "preprocessing.json", "re-run `tflmp train`", optional=True)
        figures = [_figure(_label(key), _plot_confusion(
            metrics[key]["confusion"], pre.get("labels") or [],
            f"{_label(key)}: accuracy {metrics[key]['accuracy']:.4f}", run_dir / PLOTS / name))
            for key, name in runs]
        return _section("confusion", "Confusion matrices (test set)", _figures(*figures),
                        _text("Rows are the true classes, columns the predicted ones; the "
                              "colour is the share of the row."))
    if rep["task"] == "autoencoder":
        keys = [k for k in rep["ledger"] if k != "metric" and k in metrics]
        rows = [[_label(k), _metric(metrics[k].get("auc")), metrics[k].get("mse_normal"),
                 metrics[k].get("n")] for k in keys]
        path = _plot_anomaly({_label(k): metrics[k] for k in keys}, run_dir / PLOTS / "anomaly.png")
        return _section("anomaly", "Anomaly detection (test set)",
                        _figures(_figure("AUC and reconstruction MSE", path)),
                        _table(["model", "AUC", "MSE, normal samples", "samples"], rows,
                               table_id="anomaly-table"),
                        _text("The anomaly score is a sample's reconstruction mean squared "
                              "error; AUC of that score against the labels."))
    return None


def _preparation_section(rep: dict) -> dict | None:
    prep = rep.get("int8_preparation")
    if prep is None:
        return None
    rewrites, floats = prep.get("rewrites", []), prep.get("float_during_qat", [])
    return _section(
        "int8-preparation", "int8 preparation",
        _items(rewrites) if rewrites else _text("No rewrites: the trained model was "
                                                "quantizable as it was."),
        _table(["layer left float during QAT", "reason"],
               [[f["layer"], f["reason"]] for f in floats], table_id="float-layers-table")
        if floats else _text("Every layer was quantized during QAT."))


def _layers_section(layers) -> dict:
    rows = [[r.index, r.name, r.op, "; ".join(_shape(s) for s in r.output_shapes), r.params,
             r.macs, r.activation_bytes] for r in layers]
    total = ["", f"{len(layers)} ops", "", "", sum(r.params for r in layers),
             sum(r.macs for r in layers), sum(r.activation_bytes for r in layers)]
    return _section("layers", "Per-layer profile (model_int8.tflite)",
                    _table(["#", "layer (output tensor)", "op", "output shape", "params",
                            "MACs", "activation bytes"], rows, table_id="layers-table",
                           total=total),
                    _text("MACs count the multiply-accumulates of convolutions, fully "
                          "connected, LSTM and batch matmul ops; the activation total adds "
                          "every op's output, not what is alive at once (the arena below)."))


def _memory_section(model: dict) -> dict:
    a32 = model.get("arena_32bit", {})
    rows = [["flash: model_int8.tflite", _bytes(model.get("tflite_bytes")),
             f"sha256 {model.get('sha256', '?')[:16]}…"],
            ["arena, 64-bit host", _bytes(model.get("arena_bytes")),
             model.get("arena_basis", "")],
            ["arena, 32-bit MCU (derived)", _bytes(a32.get("arena_bytes")),
             f"TFLM profile {a32.get('profile', '?')}: arena_used_bytes "
             f"{_fmt(a32.get('arena_used_bytes'))} = tensors {_fmt(a32.get('planned_bytes'))}"
             f" + bookkeeping {_fmt(a32.get('bookkeeping_bytes'))}; peak in the "
             f"{a32.get('binding_phase', '?')} phase; "
             + ("exact" if a32.get("exact") else "sized generously for unmeasured ops: "
                + _fmt(a32.get("unmeasured_ops")))]]
    candidates = [[_label(k), _bytes(c.get("tflite_bytes")), _bytes(c.get("arena_bytes"))]
                  for k, c in model.get("candidates", {}).items()]
    return _section("memory", "Memory",
                    _table(["figure", "bytes", "basis"], rows, table_id="memory-table"),
                    _table(["int8 candidate", ".tflite", "arena, 64-bit host"], candidates,
                           caption="both int8 conversions") if candidates else None,
                    _text("The 64-bit host arena is what the TFLM Python interpreter needs "
                          "here (8-byte pointers); the firmware uses the 32-bit figure."))


def _extra_sections(run_dir: Path, rep: dict) -> list[dict]:
    """Sections for optional report.json entries, present only when the run has them."""
    out = []
    if rep.get("parity"):
        out.append(_section("parity", "Parity (int8 in TFLM vs references)",
                            *_generic_blocks(rep["parity"], "parity")))
    errors = rep.get("per_layer_error")
    if errors:
        path = _plot_layer_error(errors, run_dir / PLOTS / "per_layer_error.png")
        out.append(_section("per-layer-error", "Per-layer quantization error",
                            _figures(_figure("RMSE of each layer's output, in units of its "
                                             "int8 scale", path)),
                            *_generic_blocks(errors, "per-layer-error")))
    for key, title in (("profile", "Profile"), ("board_fit", "Board fit")):
        if rep.get(key):
            name = key.replace("_", "-")
            out.append(_section(name, title, *_generic_blocks(rep[key], name)))
    return out


def _generic_blocks(value, name: str) -> list[dict]:
    """A table per list of dicts (id ``name-KEY``), one key/value table for the rest
    (id ``name-table``, nested keys dotted)."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = list(dict.fromkeys(k for row in value for k in row))
        return [_table(columns, [[row.get(c) for c in columns] for row in value],
                       table_id=f"{name}-table")]
    if not isinstance(value, dict):
        return [_text(_fmt(value))]
    pairs, tables = [], []
    for key, v in _flatten(value):
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.extend({**t, "caption": key}
                          for t in _generic_blocks(v, f"{name}-{key.replace('.', '-')}"))
        else:
            pairs.append((key, v))
    return ([_kv(pairs, f"{name}-table")] if pairs else []) + tables


def _flatten(value: dict, prefix: str = ""):
    for key, v in value.items():
        if isinstance(v, dict) and v:
            yield from _flatten(v, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", v


def _firmware_section(run_dir: Path, model: dict) -> dict | None:
    from .codegen.project import PROJECT_FILE

    paths = sorted((run_dir / "firmware").glob(f"*/{PROJECT_FILE}"))
    if not paths:
        return None
    rows = []
    for path in paths:
        p = _read_json(path, f"regenerate it with `tflmp firmware {run_dir} --target "
                             f"{path.parent.name}`")
        arena = p.get("arena", {})
        rows.append([p.get("target"), path.parent.relative_to(run_dir).as_posix(),
                     _bytes(arena.get("arena_bytes")), arena.get("tree") or arena.get("profile"),
                     "run's model" if p.get("model_sha256") == model.get("sha256")
                     else "re-converted for this TFLM", p.get("golden", {}).get("count"),
                     p.get("notes")])
    return _section("firmware", "Firmware projects",
                    _table(["target", "folder", "arena", "TFLM", "model", "golden vectors",
                            "notes"], rows, table_id="firmware-table"))


def _timings_section(rep: dict) -> dict | None:
    timings = rep.get("timings_s")
    if not timings:
        return None
    total = timings.get("total") or sum(timings.values())
    rows = [[stage, _seconds(s), f"{100 * s / total:.0f} %" if total else "—"]
            for stage, s in timings.items() if stage != "total"]
    return _section("timings", "Timings", _table(["stage", "time", "share"], rows,
                                                 total=["total", _seconds(total), ""]))


def _compare_ledger(reps: list[dict], heads: list[str]) -> dict:
    keys = list(dict.fromkeys(k for r in reps for k in r["ledger"] if k != "metric"))
    columns, rows = ["model"], [[_label(k)] for k in keys]
    for rep, head in zip(reps, heads):
        metric = rep["ledger"]["metric"]
        columns += [f"{head} {metric}", f"{head} drop (pp)"]
        for key, row in zip(keys, rows):
            entry = rep["ledger"].get(key, {})
            row += [_metric(entry.get(metric)),
                    "—" if "drop_pp" not in entry else f"{entry['drop_pp']:+.2f}"]
    return _table(columns, rows, table_id="ledger-table")


def _compare_paths(out_path) -> tuple[Path, Path]:
    out = Path(out_path) if out_path is not None else Path.cwd()
    if out.is_dir() or not out.suffix:
        out = out / "compare.html"
    return out.with_suffix(".html"), out.with_suffix(".md")


# --- figures -----------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    _pyplot().close(fig)
    return path


def _plot_confusion(matrix: list[list[int]], labels: list, title: str, path: Path) -> Path:
    import numpy as np

    counts = np.asarray(matrix)
    n = len(counts)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = [str(x) for x in labels] if len(labels) == n else [str(i) for i in range(n)]
    side = min(3.0 + 0.22 * n, 9)
    fig, ax = _pyplot().subplots(figsize=(side, side))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if n <= 20:
        for (i, j), count in np.ndenumerate(counts):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.6 else "black")
    if n <= 40:
        ax.set_xticks(range(n), names, rotation=90 if max(map(len, names)) > 2 else 0,
                      fontsize=8)
        ax.set_yticks(range(n), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _plot_anomaly(metrics: dict[str, dict], path: Path) -> Path:
    fig, axes = _pyplot().subplots(1, 2, figsize=(9, 3.4))
    names = list(metrics)
    for ax, key, title in ((axes[0], "auc", "AUC (higher is better)"),
                           (axes[1], "mse_normal", "MSE on normal samples")):
        values = [metrics[n].get(key) or 0.0 for n in names]
        ax.barh(names, values, color="#3b6ea8")
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_yticks([])
    return _save(fig, path)


def _plot_layer_error(rows: list[dict], path: Path) -> Path:
    names = [f"{r.get('layer', '?')} ({r.get('op', '?')})" for r in rows]
    fig, ax = _pyplot().subplots(figsize=(8, 1.2 + 0.28 * len(rows)))
    ax.barh(names, [r.get("rmse_over_scale") or 0.0 for r in rows], color="#c0504d")
    ax.invert_yaxis()
    ax.set_xlabel("RMSE / output scale (int8 steps)")
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


# --- rendering ---------------------------------------------------------------------

def _layers(run_dir: Path):
    from .model_info import read_model
    from .profile import layers
    from .runs import SELECTED_MODEL

    return layers(read_model(run_dir / SELECTED_MODEL))


def _read_json(path: Path, fix: str, optional: bool = False):
    """A JSON file of the run ({} for a missing optional one); one-line errors."""
    if optional and not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise TflmpError(f"{path} is corrupt ({e}); {fix}") from None


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             autoescape=jinja2.select_autoescape(["html.j2"]))
    env.filters["md"] = _md_escape
    return env


def _md_escape(value) -> str:
    """Text safe inside a Markdown table cell or paragraph."""
    return (str(value).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
            .replace("\n", " "))


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _write_document(doc: dict, md_path: Path, html_path: Path) -> tuple[Path, Path]:
    """Markdown with images as paths relative to it, HTML with images embedded."""
    env = _environment()
    md_dir = md_path.parent.resolve()
    md = env.get_template("report.md.j2").render(
        doc=doc, src=lambda p: Path(os.path.relpath(Path(p).resolve(), md_dir)).as_posix())
    html = env.get_template("report.html.j2").render(doc=doc, src=_data_uri)
    return write_text(md_path, md), write_text(html_path, html)
