"""``tflmp`` command line: parses options, calls the Python API, prints results.

User mistakes (:class:`TflmpError`) print one line and exit with code 2.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import TflmpError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tflmp")
def cli():
    """Train, quantize and verify Keras models for TensorFlow Lite Micro."""


@cli.command()
@click.option("--model", default="lenet", show_default=True, help="Model from the zoo.")
@click.option("--dataset", default="digits", show_default=True,
              help="digits, mnist, fashion-mnist, or a path to an .npz file.")
@click.option("--data-dir", type=click.Path(), help="Folder with the dataset's idx .gz files.")
@click.option("--epochs", type=int, default=30, show_default=True,
              help="Float training epochs (early stopping may end sooner).")
@click.option("--qat-epochs", type=int, default=3, show_default=True,
              help="Quantization-aware fine-tuning epochs; 0 = post-training quantization only.")
@click.option("--batch-size", type=int, help="Default: chosen from the training-set size.")
@click.option("--lr", type=float, default=2e-3, show_default=True, help="Learning rate.")
@click.option("--qat-lr", type=float, help="QAT learning rate (default: lr / 10).")
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd"]), default="adam",
              show_default=True)
@click.option("--patience", type=int, default=8, show_default=True,
              help="Early-stopping patience in epochs (validation accuracy).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-split", type=float, default=0.1, show_default=True,
              help="Share of train carved out for validation when the data has no val split.")
@click.option("--split", default="7:2:1", show_default=True,
              help="train:val:test ratio for data given as one array pair.")
@click.option("--window", type=int, help="CSV data: rows per window.")
@click.option("--stride", type=int, help="CSV data: rows between window starts (default --window).")
@click.option("--label-column", default="label", show_default=True, help="CSV data: label column.")
@click.option("--columns", help="CSV data: comma-separated channel columns (default: all others).")
@click.option("--image-size", metavar="HxW", help="Image folders: model input size, e.g. 96x96.")
@click.option("--color", type=click.Choice(["grayscale", "rgb"]), default="grayscale",
              show_default=True, help="Image folders: channels.")
@click.option("--audio-features", type=click.Choice(["mfcc", "log-mel"]), default="mfcc",
              show_default=True, help="WAV folders: features (16 kHz mono clips).")
@click.option("--clip-seconds", type=float, default=1.0, show_default=True,
              help="WAV folders: clip length (shorter clips are padded).")
@click.option("--augment", help="Images: flip,shift=0.1,rotate=10; audio: "
              "time-shift=100,noise=DIR,snr=5:20,copies=2.")
@click.option("--workers", type=int, help="Processes for TFLM evaluation (default: all CPUs).")
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="Fail when the selected int8 model loses more points than this vs float.")
@click.option("--out", type=click.Path(), help="Run folder (default runs/<model>-<data>-<time>).")
@click.option("--resume", type=click.Path(), metavar="RUN_DIR",
              help="Continue an interrupted run from its last checkpoint.")
@click.option("--strategy", type=click.Choice(["mirrored", "multi-worker"]),
              help="Train with tf.distribute: all local devices, or one process per "
              "machine with TF_CONFIG (see the README).")
@click.option("--ladder", is_flag=True, help="Also run the parity ladder and per-layer "
              "quantization error (as `tflmp verify --ladder`) into the report.")
@click.pass_context
def train(ctx, resume, out, ladder, **options):
    """Train, fine-tune with QAT, convert to int8 and evaluate in TFLM."""
    from .data import parse_size, parse_split
    from .pipeline import run_training
    from .train import TrainConfig

    if resume:
        changed = [k for k in options if ctx.get_parameter_source(k).name != "DEFAULT"]
        if changed or out:
            flags = ", ".join("--" + k.replace("_", "-") for k in changed + (["out"] if out else []))
            raise TflmpError(f"--resume continues a run with its saved settings; drop {flags}")
        report = run_training(resume=resume, command=sys.argv, ladder=ladder)
    else:
        options["split"] = parse_split(options["split"])
        if options["image_size"]:
            options["image_size"] = parse_size(options["image_size"])
        if options["columns"]:
            options["columns"] = [c.strip() for c in options["columns"].split(",") if c.strip()]
        report = run_training(TrainConfig(**options), out, command=sys.argv, ladder=ladder)
    if report is not None:  # None: a multi-worker run's non-chief worker
        _print_train_summary(report)


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--c-array", is_flag=True, help="Write <name>_model_data.h/.cc.")
@click.option("--name", help="Model name for C identifiers and file names.")
@click.option("--out", type=click.Path(), help="Output folder (default build/<name>).")
@click.option("--dataset", help="Calibration data when MODEL is a Keras .h5 file.")
@click.option("--data-dir", type=click.Path())
@click.option("--target", "target_name", metavar="TARGET",
              help="Write a firmware project for TARGET instead (as 'tflmp firmware').")
@click.option("--trust-model", is_flag=True,
              help="Load a Keras file even if its Lambda layers run code stored in it.")
def convert(model, c_array, name, out, dataset, data_dir, target_name, trust_model):
    """Convert MODEL (.tflite, run folder or Keras .h5) for a microcontroller."""
    from .convert import convert_model

    if target_name:
        _write_firmware(model, target_name, out, name)
        return
    result = convert_model(model, out, name=name, c_array=c_array, dataset=dataset,
                           data_dir=data_dir, trust_model=trust_model)
    m = result["model"]
    click.echo(f"{result['name']}: {m['bytes']:,} bytes, ops {', '.join(m['ops'])}")
    for f in result["files"]:
        click.echo(f"  wrote {f}")


@cli.command()
@click.argument("source", type=click.Path())
@click.option("--target", "target_name", required=True, metavar="TARGET",
              help="arduino-nano33ble, esp32, esp-idf or platformio.")
@click.option("--out", type=click.Path(), help="Project folder (default RUN/firmware/TARGET).")
@click.option("--name", help="Model name for C identifiers and file names.")
@click.option("--check", is_flag=True,
              help="Compile against --tflm-dir and run the golden self-test (host, QEMU M4).")
@click.option("--tflm-dir", type=click.Path(), help="TFLM source tree for --check.")
@click.option("--no-qemu", is_flag=True, help="With --check: host only.")
def firmware(source, target_name, out, name, check, tflm_dir, no_qemu):
    """Write a ready-to-build firmware project for SOURCE (run folder or .tflite)."""
    if check and not tflm_dir:
        raise TflmpError("--check needs --tflm-dir PATH: a TFLM source tree (e.g. the src/ of "
                         "your Arduino TFLM library, or esp-tflite-micro)")
    project = _write_firmware(source, target_name, out, name)
    if check:
        from .firmware_check import check_project

        failed = False
        for r in check_project(project.out_dir, tflm_dir, qemu=False if no_qemu else None):
            used = (f"arena_used_bytes {r.arena_used_bytes:,} of {r.arena_bytes:,}"
                    if r.arena_used_bytes is not None else "no arena report")
            click.echo(f"check {r.platform}: {'PASS' if r.passed else 'FAIL'}, {used}")
            lines = r.output.splitlines()
            shown = lines[-8:] if not r.passed else [ln for ln in lines if "self-test" in ln]
            if r.platform.startswith("qemu"):
                shown = [ln + " (QEMU time, not device time)" if "per inference" in ln else ln
                         for ln in shown]
            click.echo("  " + "\n  ".join(shown))
            failed = failed or not r.passed
        if failed:
            raise TflmpError("the generated firmware failed its self-test against that TFLM tree")


@cli.command()
@click.argument("project", type=click.Path())
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyACM0.")
@click.option("--env", help="PlatformIO environment (board) to build and upload.")
@click.option("--dry-run", is_flag=True, help="Print the commands instead of running them.")
def flash(project, port, env, dry_run):
    """Build and upload a project written by 'tflmp firmware'."""
    import shlex

    from .flash import flash as run_flash

    for cmd in run_flash(project, port, env=env, dry_run=dry_run):
        click.echo(shlex.join(cmd))


def _write_firmware(source, target_name, out, name):
    from .codegen.project import generate

    project = generate(source, target_name, out, name=name)
    a = project.arena
    click.echo(f"{project.target} project for {project.name} in {project.out_dir}")
    click.echo(f"  arena {a.bytes:,} bytes for a 32-bit MCU ({a.planned:,} activations + "
               f"{a.bookkeeping:,} bookkeeping){'' if a.exact else ' (estimated)'}")
    for note in project.notes:
        click.echo(f"  note: {note}")
    click.echo(f"  {len(project.files)} files; build and flash: see {project.out_dir}/README.md")
    return project


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--dataset", help="digits, mnist, fashion-mnist or an .npz (default: the run's).")
@click.option("--data-dir", type=click.Path())
@click.option("--split", default="test", show_default=True,
              type=click.Choice(["train", "val", "test"]))
@click.option("--preprocessing", type=click.Path(),
              help="preprocessing.json (default: the one in the model's run folder).")
@click.option("--workers", type=int, help="Processes for TFLM (default: all CPUs).")
@click.option("--ladder", is_flag=True, help="Parity ladder Keras -> TFLite -> TFLM, first "
              "diverging layer, per-layer quantization error (run folders).")
@click.option("--tolerance", type=int, default=0, show_default=True,
              help="int8 steps TFLM may differ from TFLite before layers are compared.")
@click.option("--out", type=click.Path(), help="Write the results as JSON here.")
def verify(model, dataset, data_dir, split, preprocessing, workers, ladder, tolerance, out):
    """Run MODEL over a dataset split in the real TFLM interpreter."""
    from .artifacts import write_json
    from .verify import verify_model

    result = verify_model(model, dataset=dataset, data_dir=data_dir, split=split,
                          preprocessing=preprocessing, workers=workers, ladder=ladder,
                          tolerance=tolerance)
    m = result["metrics"]
    if "accuracy" in m:
        click.echo(f"TFLM accuracy on {result['dataset']} {split}: {m['accuracy']:.4f} "
                   f"({m['n']} samples)")
    else:
        auc = "n/a (no anomalies in the split)" if m["auc"] is None else f"{m['auc']:.4f}"
        click.echo(f"TFLM anomaly-detection AUC on {result['dataset']} {split}: {auc} "
                   f"({m['n']} samples, reconstruction MSE of normal samples "
                   f"{m['mse_normal']:.5f})")
    click.echo(f"arena: {result['arena_bytes']:,} bytes measured on this 64-bit host")
    if result["arena_32bit"]:
        a = result["arena_32bit"]
        click.echo(f"       {a['arena_bytes']:,} bytes derived for a 32-bit MCU ({a['profile']}"
                   f"{'' if a['exact'] else ', estimated'}; 'tflmp firmware' sizes it per target)")
    if "parity" in result:
        _print_ladder(result)
    if "confusion" in m:
        click.echo("confusion (rows true, columns predicted):")
        width = max(len(str(v)) for row in m["confusion"] for v in row)
        for label, row in zip(result["labels"], m["confusion"]):
            click.echo(f"  {label[:12]:>12} " + " ".join(f"{v:>{width}}" for v in row))
    if out:
        click.echo(f"wrote {write_json(out, result)}")


def _print_ladder(result: dict) -> None:
    p = result["parity"]
    click.echo(f"parity ladder ({p['split_size']} samples):")
    for r in p["rungs"]:
        metric = next(k for k in ("accuracy", "auc") if k in r)
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
    worst = sorted(result["per_layer_error"], key=lambda r: -r["rmse_over_scale"])[:3]
    click.echo("  quantization error, worst layers (RMSE / scale): "
               + ", ".join(f"{r['layer']} {r['rmse_over_scale']:.2f}" for r in worst))


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--board", help="Check the fit on this board (see the table without it).")
@click.option("--boards-file", type=click.Path(), help="Your boards YAML, merged over ours.")
@click.option("--measured-us", type=float,
              help="Latency measured on the board (the self-test prints it) to narrow the band.")
@click.option("--measured-macs", type=int,
              help="MACs of the model --measured-us was measured on (default: this model).")
@click.option("--out", type=click.Path(), help="Write the profile as JSON here.")
def profile(model, board, boards_file, measured_us, measured_macs, out):
    """Per-layer MACs and memory, memory plan, flash, latency band and board fit of MODEL
    (a .tflite or a run folder).  Exits with 2 when it does not fit --board."""
    from .artifacts import write_json
    from .latency import Measurement
    from .profile import model_profile
    from .runs import resolve

    if measured_us is not None and not board:
        raise TflmpError("--measured-us needs --board (the clock it was measured at)")
    measured = Measurement(measured_us, measured_macs) if measured_us is not None else None
    p = model_profile(resolve(model).model_path, board=board, boards_file=boards_file,
                      measured=measured)
    _print_profile(p)
    if out:
        click.echo(f"wrote {write_json(out, p)}")
    if board and not p["board"]["fits"]:
        raise TflmpError(p["board"]["message"])


def _print_profile(p: dict) -> None:
    rows = [[str(r["index"]), r["op"], r["name"][:32],
             " ".join("x".join(map(str, s)) for s in r["output_shapes"]),
             f"{r['params']:,}", f"{r['macs']:,}", f"{r['activation_bytes']:,}"]
            for r in p["layers"]]
    t = p["totals"]
    rows.append(["", f"{t['ops']} ops", "", "", f"{t['params']:,}", f"{t['macs']:,}",
                 f"{t['activation_bytes']:,}"])
    _print_table(["#", "op", "layer", "output", "params", "MACs", "act. bytes"], rows)
    m, f = p["memory"], p["flash"]
    click.echo(f"memory plan: peak at {m['peak_op']}, live: "
               + ", ".join(f"{b['tensor'][:24]} {b['bytes']:,}" for b in m["live_at_peak"]))
    click.echo(f"  lower bound {m['lower_bound_bytes']:,} B <= TFLM planner "
               f"{m['planned_bytes']:,} B <= arena {m['arena_32bit_bytes']:,} B (32-bit, "
               f"{m['arena_32bit_profile']}{'' if m['arena_32bit_exact'] else ', estimated'}); "
               f"gap {m['gap_bytes']:,} B; 64-bit host arena {m['arena_host_bytes']:,} B")
    click.echo(f"flash: model {f['model_bytes']:,} B + TFLM code ~{f['code_bytes']:,} B "
               f"({f['code_basis']})")
    _print_table(["board", "fits", "RAM needed", "flash needed", "latency ms"],
                 [[b["board"], "yes" if b["fits"] else "NO",
                   f"{b['ram_needed']:,} / {b['ram']:,}", f"{b['flash_needed']:,} / {b['flash']:,}",
                   b["latency_ms"]] for b in p["boards"]])
    if "board" in p:
        b = p["board"]
        click.echo(b["message"])
        lat = b["latency"]
        click.echo(f"latency on {b['board']}: {lat['low_ms']:.3g}-{lat['high_ms']:.3g} ms "
                   f"({lat['basis']})")


def _print_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    for row in [head, *rows]:
        click.echo("  ".join(str(c).rjust(w) if i >= 4 or c[:1].isdigit() and i else
                             str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))))


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir):
    """Regenerate RUN_DIR's report.md and report.html from its report.json."""
    from .report import render_reports

    for path in render_reports(run_dir):
        click.echo(f"wrote {path}")


@cli.command()
@click.argument("run_a", type=click.Path(exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(), help="Folder or file name (default: here, compare.*).")
def compare(run_a, run_b, out):
    """Put two runs side by side: ledger, sizes, timings, config differences."""
    from .report import compare_runs

    click.echo(f"wrote {compare_runs(run_a, run_b, out)}")


def _print_train_summary(report: dict) -> None:
    ledger, m = report["ledger"], report["metrics"]
    metric = ledger["metric"]
    click.echo("")
    click.echo(f"quantization ledger ({metric} on the test set):")
    titles = {"float": "float (Keras)", "qat_keras": "QAT (Keras)",
              "ptq_int8_tflm": "PTQ int8 (TFLM)", "qat_int8_tflm": "QAT int8 (TFLM)"}
    for key, title in titles.items():
        if key in ledger:
            row = ledger[key]
            drop = f"  ({0.0 - row['drop_pp']:+.2f} pp)" if "drop_pp" in row else ""
            mark = "  <- selected" if key == m["selected"] else ""
            click.echo(f"  {title:<17} {row[metric]:.4f}{drop}{mark}")
    model = report["model"]
    click.echo(f"model_int8.tflite: {model['tflite_bytes']:,} bytes, ops {', '.join(model['ops'])}")
    click.echo(f"arena: {model['arena_bytes']:,} bytes on this 64-bit host, "
               f"{model['arena_32bit']['arena_bytes']:,} derived for a 32-bit MCU")
    t = report["timings_s"]
    click.echo(f"time: {t['total']:.0f}s (train {t['train']:.0f}, QAT {t.get('qat', 0):.0f}, "
               f"convert {t['convert']:.0f}, evaluate {t['evaluate']:.0f})")
    click.echo(f"run folder: {report['run_dir']}")


def main(argv=None) -> int:
    try:
        cli.main(args=argv, prog_name="tflmp", standalone_mode=False)
    except TflmpError as e:
        click.echo(f"tflmp: error: {e}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("tflmp: interrupted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
