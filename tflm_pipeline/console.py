"""Every line the ``tflmp`` command line prints, rendered from the commands' typed
results.  Library code only logs (``logging``); :func:`install_logging` is how the CLI
shows those messages: information on stdout as plain lines, warnings on stderr."""

from __future__ import annotations

import logging
import re

import click

from .record import TITLES

_LEDGER_ORDER = tuple(TITLES)


class _ClickHandler(logging.Handler):
    """Log records as plain lines: INFO on stdout, WARNING and above on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.WARNING:
                click.echo(f"tflmp: warning: {text}", err=True)
            else:
                click.echo(text)
        except Exception:  # never let printing take the command down
            self.handleError(record)


def install_logging() -> None:
    """Show the package's log messages the way the CLI prints (once per process)."""
    logger = logging.getLogger("tflm_pipeline")
    if not any(isinstance(h, _ClickHandler) for h in logger.handlers):
        handler = _ClickHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def error(message: str) -> None:
    click.echo(f"tflmp: error: {message}", err=True)


# --- train -----------------------------------------------------------------------------

def train_summary(result) -> None:
    """The quantization ledger, the selected model, arenas, timings and the run folder."""
    rec = result.record
    metric, unit = rec.metric, rec.ledger.unit
    click.echo("")
    in_what = "points" if unit == "pp" else "% of float's error"
    click.echo(f"quantization ledger ({metric} on the test set; change vs float in {in_what}, "
               "+ = better):")
    for key in _LEDGER_ORDER:
        row = rec.ledger.rows.get(key)
        if row is None:
            continue
        change = "" if row.change is None else f"  ({row.change:+.2f} {unit})"
        mark = "  <- selected" if key == rec.selected else ""
        value = "n/a" if row.value is None else f"{row.value:.4f}"  # e.g. AUC without anomalies
        click.echo(f"  {TITLES[key]:<17} {value}{change}{mark}")
    if rec.threshold is not None:
        click.echo(threshold_line(rec.threshold, "binary" if rec.task == "classification"
                                  else "anomaly"))
    if rec.per_class:
        click.echo(per_class_line(rec.per_class, rec.selected, rec.error_gallery or {}))
    if rec.cross_validation:
        click.echo(cross_validation_line(rec.cross_validation))
    model = rec.model
    click.echo(f"model_int8.tflite: {model.tflite_bytes:,} bytes, ops {', '.join(model.ops)}")
    click.echo(f"arena: {model.arena_bytes:,} bytes on this 64-bit host, "
               f"{model.arena_32bit['arena_bytes']:,} derived for a 32-bit MCU")
    t = rec.timings_s
    click.echo(f"time: {t['total']:.0f}s (train {t['train']:.0f}, QAT {t.get('qat', 0):.0f}, "
               f"convert {t['convert']:.0f}, evaluate {t['evaluate']:.0f})")
    click.echo(f"run folder: {rec.run_dir}")
    if rec.lr_range:
        click.echo(f"--lr auto: {rec.lr_range['chosen']:.3g} ({rec.lr_range['reason']}; "
                   f"plot plots/lr_range.png)")
    if rec.diagnosis:
        click.echo(f"doctor ({len(rec.diagnosis)} finding{'s' if len(rec.diagnosis) != 1 else ''}"
                   f"; `tflmp doctor {rec.run_dir}` repeats them):")
        for f in rec.diagnosis:
            _finding(f)


def cross_validation_line(cv: dict) -> str:
    """``--cv K``: each model's mean +- std of the metric over the folds, in one line."""
    names = {"float": "float", "ptq_int8_tflm": "PTQ int8", "qat_int8_tflm": "QAT int8",
             "selected_int8": "selected int8"}
    metric = cv["metric"]
    parts = [f"{names.get(k, k)} {cv['mean'][k][metric]:.4f} +- {cv['std'][k][metric]:.4f}"
             for k in cv["models"]]
    return (f"cross-validation ({cv['k']} folds, {metric} on the held-out parts, int8 in "
            f"TFLM; {cv['seconds']:.0f}s): " + ", ".join(parts))


# --- doctor ------------------------------------------------------------------------------

def doctor_result(result) -> None:
    """One line per finding: severity, code, evidence, what to try."""
    if not result.finished:
        click.echo(f"{result.run_dir}: unfinished run (no report.json): training rules only")
    if result.healthy:
        click.echo(f"{result.run_dir}: no problems found")
        return
    for f in result.findings:
        _finding(f.to_dict())


def _finding(f: dict) -> None:
    click.echo(f"  {f['severity']} {f['code']}: {f.get('problem') or f['code']}: "
               f"{f['evidence']} -> try {f['remedy']}")


def per_class_line(per_class: dict, selected: str, gallery: dict) -> str:
    """The selected int8 model's weakest class by F1, and how many test samples it gets
    wrong (the report shows every class and the error galleries)."""
    m, labels = per_class["models"][selected], per_class["labels"]
    worst = min(range(len(labels)), key=lambda i: m["f1"][i])
    wrong = gallery.get("int8_wrong", {}).get("total")
    return (f"per class ({TITLES.get(selected, selected)}): lowest F1 {m['f1'][worst]:.3f} for "
            f"'{labels[worst]}' (precision {m['precision'][worst]:.3f}, recall "
            f"{m['recall'][worst]:.3f})"
            + (f"; {wrong} test samples wrong (plots/gallery_int8_wrong.png)" if wrong else ""))


def threshold_line(threshold: dict, kind: str = "anomaly") -> str:
    """An anomaly (or ``kind`` "binary": class-1) threshold, how it was chosen and what it
    gives on the test split."""
    test = threshold.get("test") or {}

    def share(key):
        v = test.get(key)
        return "n/a" if v is None else f"{v:.3f}"

    return (f"{kind} threshold: score > {threshold['value']:.6g} ({threshold['method']}); "
            f"test precision {share('precision')}, recall {share('recall')}, "
            f"false alarms {share('false_alarm_rate')}")


# --- convert, firmware, flash ------------------------------------------------------------

def convert_result(result) -> None:
    m = result.model
    click.echo(f"{result.name}: {m['bytes']:,} bytes, ops {', '.join(m['ops'])}")
    plan = getattr(result, "offline_plan", None)
    if plan is not None:
        click.echo(f"  offline memory plan: {plan['reason']}" if plan["applied"] else
                   f"  offline memory plan not written: {plan['reason']}")
    for f in result.files:
        click.echo(f"  wrote {f}")


def firmware_result(result) -> None:
    """The project, its arena and notes, and the self-test of each check."""
    project = result.project
    a = project.arena
    click.echo(f"{project.target} project for {project.name} in {project.out_dir}")
    click.echo(f"  arena {a.bytes:,} bytes for a 32-bit MCU ({a.planned:,} activations + "
               f"{a.bookkeeping:,} bookkeeping){'' if a.exact else ' (estimated)'}")
    known_issues(result.known_issues)
    actions = {r.action for r in result.known_issues}
    for note in project.notes:
        if note not in actions:
            click.echo(f"  note: {note}")
    click.echo(f"  {len(project.files)} files; build and flash: see {project.out_dir}/README.md")
    for r in result.checks:
        if r.compile_only:
            click.echo(f"check {r.platform}: {'PASS' if r.passed else 'FAIL'}")
            click.echo("  " + "\n  ".join(r.output.splitlines()))
            continue
        used = (f"arena_used_bytes {r.arena_used_bytes:,} of {r.arena_bytes:,}"
                if r.arena_used_bytes is not None else "no arena report")
        click.echo(f"check {r.platform}: {'PASS' if r.passed else 'FAIL'}, {used}")
        lines = r.output.splitlines()
        shown = lines[-8:] if not r.passed else [ln for ln in lines if "self-test" in ln]
        if r.instructions_per_inference is not None:
            shown = [re.sub(r"\d+ us per inference",
                            f"{r.instructions_per_inference:,} Cortex-M4 instructions per "
                            "inference (QEMU -icount, to 1,000)", ln) for ln in shown]
        click.echo("  " + "\n  ".join(shown))
        if r.op_instructions:
            total = sum(o["instructions"] for o in r.op_instructions) or 1
            top = sorted(r.op_instructions, key=lambda o: -o["instructions"])[:5]
            click.echo("  heaviest ops (Cortex-M4 instructions, TFLM MicroProfiler): " + ", ".join(
                f"#{o['index']} {o['op']} {o['instructions']:,} ({o['instructions'] / total:.0%})"
                for o in top))


def flash_result(result) -> None:
    """The commands, setup first; a dry run says they did not run."""
    from .mcu.toolchains import shell_lines

    if not result.ran:
        if result.setup:
            click.echo("# once, on a fresh machine:")
            for line in shell_lines(result.setup):
                click.echo(line)
            click.echo("# build and upload:")
        for line in shell_lines(result.commands):
            click.echo(line)
        return
    for line in shell_lines(result.setup + result.commands):
        click.echo(line)


# --- verify ------------------------------------------------------------------------------

def verify_result(result) -> None:
    if result.new_data is not None:
        _new_data_lines(result)
        return
    m = result.scores
    _SCORE_LINES[result.task](result, m)
    click.echo(f"arena: {result.arena.bytes:,} bytes measured on this 64-bit host")
    a = result.arena_32bit
    if a is not None:
        click.echo(f"       {a.bytes:,} bytes derived for a 32-bit MCU ({a.release}"
                   f"{'' if a.exact else ', estimated'}; 'tflmp firmware' sizes it per target)")
    if result.target is not None:
        _target_lines(result.target)
    if getattr(result, "qemu", None) is not None:
        _qemu_lines(result.qemu)
    if result.parity is not None:
        _ladder(result)
    if "confusion" in m:
        _confusion_lines(result.labels, m["confusion"])


def _confusion_lines(labels: list[str], confusion: list[list[int]]) -> None:
    click.echo("confusion (rows true, columns predicted):")
    width = max(len(str(v)) for row in confusion for v in row)
    for label, row in zip(labels, confusion):
        click.echo(f"  {label[:12]:>12} " + " ".join(f"{v:>{width}}" for v in row))


def _new_data_lines(result) -> None:
    """What verify --data measured on new data, and where it went."""
    r = result.new_data
    if r["labelled"] and r["task"] != "classification":
        _SCORE_LINES[r["task"]](result, result.scores)
    elif r["labelled"]:
        click.echo(f"TFLM accuracy on new data {result.dataset}: "
                   f"{result.scores['accuracy']:.4f} ({r['samples']} samples)")
        click.echo(f"classes in the data: {', '.join(r['classes'])}")
        for p in r["per_class"]:
            recall = "n/a" if p["recall"] is None else f"{p['recall']:.4f}"
            click.echo(f"  {p['class'][:12]:>12}: {p['support']} samples, recall {recall}")
        _confusion_lines(result.labels, result.scores["confusion"])
    else:
        counts = r["predicted_counts"] or {}
        click.echo(f"{r['samples']} samples of {result.dataset} without labels"
                   + ("; predicted: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                      if counts else ""))
    for note in r["notes"]:
        click.echo(f"  {note}")
    wrote(*result.written, *result.reports)


def _target_lines(t: dict) -> None:
    """The split on a target's own TFLM build against the pip interpreter."""
    def value(v):
        return "n/a" if v is None else f"{v:.4f}"

    click.echo(f"on {t['target']}'s TFLM ({t['tflm_library']}; {t['build']}):")
    if t.get("kernels"):
        click.echo(f"  kernels {t['kernels']}, rounding {t['rounding']}")
    click.echo(f"  {t['metric']} {value(t['value'])} (pip interpreter {value(t['pip_value'])}); "
               f"outputs bit-exact with the pip interpreter on {t['bit_exact_share']:.1%} of "
               f"{t['samples']} samples, largest difference {t['max_diff']} int8 steps")
    d = t.get("first_divergence")
    if d is not None:
        click.echo(f"  first differing op: #{d['op_index']} {d['op']} ({d['layer']}), up to "
                   f"{d['max_diff']} steps on {d['differing_share']:.1%} of its values")
    elif t["max_diff"]:
        click.echo("  (this tree has no preserve-all-tensors mode: no per-op comparison)")


def _qemu_lines(t: dict) -> None:
    """Samples on the target's Cortex-M4 build under QEMU against the pip interpreter."""
    click.echo(f"on {t['target']}'s TFLM under QEMU ({t['platform']}; {t['build']}):")
    click.echo(f"  outputs byte-equal with the pip interpreter on {t['bit_exact_share']:.1%} of "
               f"{t['samples']} samples, largest difference {t['max_diff']} int8 steps; "
               f"{t['instructions_per_inference']:,} Cortex-M4 instructions per inference "
               "(median; profile --measured-instructions)")


def _accuracy_line(result, m: dict) -> None:
    click.echo(f"TFLM accuracy on {result.dataset} {result.split}: {m['accuracy']:.4f} "
               f"({m['n']} samples)")


def _auc_line(result, m: dict) -> None:
    auc = "n/a (no anomalies in the split)" if m["auc"] is None else f"{m['auc']:.4f}"
    click.echo(f"TFLM anomaly-detection AUC on {result.dataset} {result.split}: {auc} "
               f"({m['n']} samples, reconstruction MSE of normal samples "
               f"{m['mse_normal']:.5f})")


def _error_line(result, m: dict) -> None:
    r2 = "n/a" if m.get("r2") is None else f"{m['r2']:.4f}"
    click.echo(f"TFLM MAE on {result.dataset} {result.split}: {m['mae']:.6g} ({m['n']} "
               f"samples, RMSE {m['rmse']:.6g}, R² {r2})")


_SCORE_LINES = {"classification": _accuracy_line, "autoencoder": _auc_line,
                "regression": _error_line}


def _ladder(result) -> None:
    p = result.parity
    click.echo(f"parity ladder ({p['split_size']} samples):")
    for r in p["rungs"]:
        metric = next(k for k in ("accuracy", "auc", "mae") if k in r)
        agree = (f", agrees with float on {r['agreement_with_float']:.2%}"
                 if "agreement_with_float" in r else "")
        click.echo(f"  {r['rung']:<16} {metric} {r[metric]:.4f}{agree}")
    d = p["tflm_vs_tflite"]
    click.echo(f"  TFLM vs TFLite reference: {d['bit_exact_share']:.2%} of samples bit-exact, "
               f"max diff {d['max_diff']}, mean {d['mean_diff']:.4f} int8 steps")
    div = p["first_divergence"]
    if div:
        click.echo(f"  first diverging op: #{div['op_index']} {div['op']} (layer {div['layer']}), "
                   f"max diff {div['max_diff']}, {div['differing_share']:.1%} of values differ")
    worst = sorted(result.per_layer_error, key=lambda r: -r["rmse_over_scale"])[:3]
    click.echo("  quantization error, worst layers (RMSE / scale): "
               + ", ".join(f"{r['layer']} {r['rmse_over_scale']:.2f}" for r in worst))


# --- profile -----------------------------------------------------------------------------

def profile_result(p) -> None:
    """Layers, memory plan, flash, every board's fit and latency; the --board detail."""
    rows = [[str(r.index), r.op, r.name[:32], " ".join("x".join(map(str, s))
                                                       for s in r.output_shapes),
             f"{r.params:,}", f"{r.macs:,}", f"{r.activation_bytes:,}"] for r in p.layers]
    t = p.totals
    rows.append(["", f"{t['ops']} ops", "", "", f"{t['params']:,}", f"{t['macs']:,}",
                 f"{t['activation_bytes']:,}"])
    _table(["#", "op", "layer", "output", "params", "MACs", "act. bytes"], rows)
    m, f = p.memory, p.flash
    a = m.arena_32bit
    click.echo(f"memory plan: peak at {m.peak_op}, live: "
               + ", ".join(f"{name[:24]} {size:,}" for name, size in m.live_at_peak))
    planner = "offline plan" if getattr(m, "offline_planned", False) else "TFLM planner"
    click.echo(f"  lower bound {m.lower_bound_bytes:,} B <= {planner} "
               f"{m.planned_bytes:,} B <= arena {a.bytes:,} B (32-bit, "
               f"{a.release}{'' if a.exact else ', estimated'}); "
               f"{m.gap_bytes:,} B above the lower bound; 64-bit host arena "
               f"{m.arena_host_bytes:,} B")
    if getattr(m, "offline_plan_bytes", None):
        click.echo(f"  an offline memory plan needs {m.offline_plan_bytes:,} B of activations: "
                   "'tflmp convert' and 'tflmp firmware' write it into the model")
    click.echo(f"flash: model {f.model_bytes:,} B + TFLM code ~{f.code_bytes:,} B "
               f"({f.code_basis})")
    why = any(not b.fit.fits for b in p.boards)
    _table(["board", "fits", "arena", "TFLM release", "RAM needed",
            "flash: model + TFLM code", "latency ms"] + (["why not"] if why else []),
           [[b.board.name, "yes" if b.fit.fits else "NO", f"{b.arena_bytes:,}",
             b.board.tflm_release, f"{sum(b.fit.ram.values()):,} of {b.board.ram_bytes:,}",
             f"{b.model_flash_bytes:,} of {b.flash_room_bytes:,}", b.latency.text]
            + (["; ".join(b.fit.reasons)] if why else []) for b in p.boards],
           right={2, 4, 5, 6})
    click.echo("  (arena: 32-bit, for the TFLM release the board links, in RAM needed; flash: of "
               "what the bootloader, other partitions and the framework leave)")
    if p.board is not None:
        b = p.board
        click.echo(b.fit.message)
        click.echo(f"latency on {b.board.name}: {b.latency.text} ms ({b.latency.basis})")
        _measured_ops_line(getattr(p, "measured_ops", None))
        known_issues(p.known_issues)


def _measured_ops_line(ops: list[dict] | None) -> None:
    """The heaviest ops of the inference profile --measure counted."""
    if not ops:
        return
    total = sum(o["instructions"] for o in ops) or 1
    top = sorted(ops, key=lambda o: -o["instructions"])[:3]
    click.echo("  counted per op (QEMU): " + ", ".join(
        f"#{o['index']} {o['op']} {o['instructions']:,} ({o['instructions'] / total:.0%})"
        for o in top) + f" of {len(ops)} ops")


def known_issues(rules) -> None:
    """One line per known-issues rule that fired (mcu/known_issues.py) and what was done."""
    for r in rules:
        click.echo(f"  known issue {r.id} ({r.issue.source}): {r.action}")


def _table(head: list[str], rows: list[list[str]], right: set[int] | None = None) -> None:
    """Columns padded to their widest cell; ``right`` are right-aligned (default: the
    fifth column on, and cells that start with a digit)."""
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    for row in [head, *rows]:
        click.echo("  ".join(
            (str(c).rjust(w) if (i in right if right is not None else
                                 i >= 4 or c[:1].isdigit() and i) else str(c).ljust(w))
            for i, (c, w) in enumerate(zip(row, widths))).rstrip())


# --- report, compare -----------------------------------------------------------------------

def wrote(*paths) -> None:
    for path in paths:
        click.echo(f"wrote {path}")


# --- models, boards, targets ---------------------------------------------------------------

def models_table(entries) -> None:
    _table(["model", "task", "params", "MACs", "reference input", "for"],
           [[e.name, e.task, f"{e.params:,}", f"{e.macs:,}", e.reference, e.summary]
            for e in entries], right={2, 3})


def boards_table(entries) -> None:
    _table(["board", "core", "MHz", "RAM", "flash", "TFLM release", "targets"],
           [[b.name, b.core.split(" (")[0], f"{b.clock_mhz:g}", f"{b.ram_bytes:,}",
             f"{b.flash_bytes:,}", b.tflm_release, ", ".join(b.targets) or "-"]
            for b in entries], right={2, 3, 4})


def targets_table(entries) -> None:
    _table(["target", "builds with", "TFLM", "title"],
           [[t.name, t.build["tool"], ", ".join(t.releases), t.title] for t in entries],
           right=set())



# --- data check --------------------------------------------------------------------------

def data_check_result(result) -> None:
    """Leaks first, then duplicates, class balance and the per-channel findings."""
    s, c = result.summary, result.checks
    what = f"{s.classes} classes" if c.class_counts is not None else "regression targets"
    click.echo(f"{s.name}: train {s.train} / val {s.val} / test {s.test}, {what}, input "
               f"{tuple(s.input_shape)}")
    leaks = c.leaks
    click.echo("leaks across splits: " + ("none found" if not leaks else ""))
    for line in leaks:
        click.echo(f"  LEAK: {line}")
    click.echo("exact duplicates within splits: "
               + ", ".join(f"{k} {v}" for k, v in c.duplicates_within.items())
               + f"; samples with conflicting labels: {c.label_conflicts}")
    click.echo("near-duplicates across splits: "
               + (", ".join(f"{k} {v}" for k, v in c.near_duplicates_across.items())
                  or "not searched"))
    if c.class_counts is not None:
        click.echo("train class counts: "
                   + ", ".join(f"{label} {n}" for label, n in zip(result.labels,
                                                                  c.class_counts["train"]))
                   + f" (imbalance {c.imbalance_ratio:g}x)")
    if c.channels:
        for label, values in (("missing values", c.missing), ("outliers (robust z > 3.5)",
                                                              c.outliers)):
            found = {k: v for k, v in values.items() if v}
            click.echo(f"{label}: " + (", ".join(f"{k} {v}" for k, v in found.items())
                                       or "none"))
        click.echo("constant channels: " + (", ".join(c.constant_channels) or "none"))
    for note in s.notes:
        click.echo(f"note: {note}")


# --- tune ------------------------------------------------------------------------------

def tune_progress(u) -> None:
    """One line per finished trial: n/N, its outcome, the best so far, time left."""
    outcome = (f"val {u.metric:.4f}" if u.metric is not None
               else f"{u.state}: {u.reason}" if u.reason else u.state)
    best = (f"best {u.best_metric:.4f} (trial {u.best_number})" if u.best_metric is not None
            else "no feasible trial yet")
    eta = f", ~{_duration(u.eta_s)} left" if u.eta_s is not None and u.done < u.total else ""
    click.echo(f"tune: trial {u.number} done ({u.done}/{u.total}): {outcome}; {best}{eta}")


def tune_summary(result) -> None:
    """The Pareto front, the best feasible trial and where everything is."""
    click.echo("")
    front = sorted(result.front, key=lambda r: r.flash_bytes or 0)
    if front:
        click.echo(f"Pareto front (val {result.metric} in TFLM vs flash, arena, latency):")
        _table(["trial", f"val {result.metric}", f"test {result.metric}", "flash B", "arena B",
                "latency ms"],
               [[str(r.number), f"{r.metric:.4f}",
                 "" if r.test_metric is None else f"{r.test_metric:.4f}",
                 f"{r.flash_bytes:,}", f"{r.ram_bytes:,}",
                 "" if r.latency_ms is None else f"{r.latency_ms:.3g}"] for r in front],
               right={1, 2, 3, 4, 5})
    counts = {}
    for r in result.trials:
        counts[r.state] = counts.get(r.state, 0) + 1
    click.echo(f"trials: {len(result.trials)} (" + ", ".join(f"{v} {k}" for k, v in
                                                          sorted(counts.items())) + ")")
    if result.trials_per_hour:
        click.echo(f"this worker: {result.trials_run} trial(s) in {_duration(result.seconds)}"
                   f" = {result.trials_per_hour:.1f} trials/hour")
    if result.best is None:
        click.echo("no trial met the limits yet: widen them or run more --trials")
    else:
        b = result.best
        click.echo(f"best feasible: trial {b.number}, val {result.metric} {b.metric:.4f}, "
                   f"{b.flash_bytes:,} B flash, {b.ram_bytes:,} B arena -> {result.best_dir}")
    wrote(*result.files)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
