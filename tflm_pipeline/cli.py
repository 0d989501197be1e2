"""``tflmp`` command line: parses options, calls one command of :mod:`tflm_pipeline.commands`
and hands its typed result to :mod:`tflm_pipeline.console`, which prints it.

User mistakes (:class:`TflmpError`) print one line and exit with code 2.  Nothing heavy
is imported before the options are checked.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .errors import TflmpError


class _LearningRate(click.ParamType):
    """A positive number or ``auto``."""

    name = "LR|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "auto":
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is neither a number nor 'auto'", param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tflmp")
def cli():
    """Train, quantize and verify Keras models for TensorFlow Lite Micro."""


@cli.command()
@click.option("--model", default="lenet", show_default=True,
              help="A zoo model (tflmp models), a Python file path.py[:function] building a "
              "tf_keras model, or a saved Keras model (.h5, .keras, SavedModel folder).")
@click.option("--task", type=click.Choice(["classification", "regression", "autoencoder"]),
              help="Default: what the data implies (.ts regression targets), else the model's.")
@click.option("--reinit", is_flag=True,
              help="A saved Keras model: train its architecture from scratch (default: "
              "fine-tune its weights).")
@click.option("--freeze", metavar="N|up-to-LAYER",
              help="A saved Keras model: keep the first N layers (or all up to LAYER) fixed "
              "during float training; QAT then fine-tunes the whole model.")
@click.option("--trust-model", is_flag=True,
              help="Load a Keras file even if its Lambda layers run code stored in it.")
@click.option("--dataset", default="digits", show_default=True,
              help="digits, mnist, fashion-mnist, or a path to an .npz file.")
@click.option("--data-dir", type=click.Path(), help="Folder with the dataset's idx .gz files.")
@click.option("--epochs", type=int,
              help="Float training epochs (early stopping may end sooner).  Without it the "
              "fast recipe decides the settings not given (config.FAST, recorded in "
              "config.json): a one-cycle schedule, a step budget, QAT only when PTQ loses "
              "accuracy.  With it: lr 2e-3, constant schedule, 3 QAT epochs.")
@click.option("--qat-epochs", type=int,
              help="Quantization-aware fine-tuning epochs; 0 = post-training quantization "
              "only (default: 3 with --epochs, else the fast recipe's, when PTQ needs it).")
@click.option("--batch-size", type=int, help="Default: chosen from the training-set size.")
@click.option("--lr", type=_LearningRate(),
              help="Learning rate, or 'auto': a learning-rate range test picks it "
              "(plots/lr_range.png).  Default: 2e-3 with --epochs, else the fast recipe's.")
@click.option("--schedule", type=click.Choice(["constant", "cosine", "onecycle"]),
              help="Float training's rate: constant (halved on a plateau), cosine or "
              "onecycle (per batch, over --epochs).  Default: constant with --epochs, "
              "else onecycle.")
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
@click.option("--group-column", metavar="COLUMN|PATTERN",
              help="Keep whole groups in one split: a CSV column (default: one named session, "
              "subject, speaker, file or group); for folders 'folder' (class/<group>/<file>) "
              "or a regular expression of the file name whose first (...) names the group "
              "(default: the sub-folder, else a Speech Commands speaker prefix); 'none' for "
              "no groups.")
@click.option("--missing", type=click.Choice(["error", "drop", "interpolate"]), default="error",
              show_default=True, help="CSV data: a missing value stops the run naming its "
              "row, drops its row (a gap), or is interpolated within its group.")
@click.option("--duplicates", type=click.Choice(["drop", "keep", "error"]), default="drop",
              show_default=True, help="Val/test samples that exactly copy an earlier split's: "
              "drop them, keep them, or stop.")
@click.option("--subset", type=int, metavar="N",
              help="At most N samples per split (stratified), for quick runs.")
@click.option("--class-weight", type=click.Choice(["auto"]),
              help="auto: weight the training loss inversely to the train class counts.")
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
@click.option("--threshold", metavar="auto|VALUE", default="auto", show_default=True,
              help="Anomaly detection: the score above which a sample is an anomaly; auto "
              "chooses it on the validation split (best F1, or the 99%% quantile of normal "
              "scores) from the scores the device computes. Binary classification: the "
              "int8 class-1 score above which the device says class 1 (auto: best F1 on "
              "validation).")
@click.option("--cv", type=int, metavar="K",
              help="First cross-validate: K folds over train+val (stratified, whole groups "
              "per fold when the data has groups), each trained and scored as float, PTQ "
              "int8 and QAT int8 in TFLM; the report gives mean +- std. Then the final "
              "model trains as usual.")
@click.option("--cv-jobs", type=int, metavar="N",
              help="Folds trained at once (default: one per 2 CPU cores).")
@click.option("--out", type=click.Path(), help="Run folder (default runs/<model>-<data>-<time>).")
@click.option("--resume", type=click.Path(), metavar="RUN_DIR",
              help="Continue an interrupted run from its last checkpoint.")
@click.option("--strategy", type=click.Choice(["mirrored", "multi-worker"]),
              help="Train with tf.distribute: all local devices, or one process per "
              "machine with TF_CONFIG (see the README).")
@click.option("--ladder", is_flag=True, help="Also run the parity ladder and per-layer "
              "quantization error (as `tflmp verify --ladder`) into the report.")
@click.option("--no-offline-plan", "offline_plan", flag_value=False, default=True,
              help="Keep TFLM's greedy memory plan in the int8 models (no offline plan).")
@click.pass_context
def train(ctx, resume, out, ladder, **options):
    """Train, fine-tune with QAT, convert to int8 and evaluate in TFLM."""
    from . import console
    from .commands.train import train as run_train
    from .config import RunConfig
    from .data.spec import parse_size, parse_split

    if resume:
        changed = [k for k in options if ctx.get_parameter_source(k).name != "DEFAULT"]
        if changed or out:
            flags = ", ".join("--" + k.replace("_", "-") for k in changed + (["out"] if out else []))
            raise TflmpError(f"--resume continues a run with its saved settings; drop {flags}")
        result = run_train(resume=resume, command=sys.argv, ladder=ladder)
    else:
        options["split"] = parse_split(options["split"])
        options["threshold"] = parse_threshold(options["threshold"])
        if options["image_size"]:
            options["image_size"] = parse_size(options["image_size"])
        if options["columns"]:
            options["columns"] = tuple(c.strip() for c in options["columns"].split(",")
                                       if c.strip())
        result = run_train(RunConfig(**options), out, command=sys.argv, ladder=ladder)
    if result.record is not None:  # None: a multi-worker run's non-chief worker
        console.train_summary(result)


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--c-array", is_flag=True, help="Write <name>_model_data.h/.cc.")
@click.option("--name", help="Model name for C identifiers and file names.")
@click.option("--out", type=click.Path(), help="Output folder (default build/<name>).")
@click.option("--dataset", help="Calibration data when MODEL is a Keras .h5 file.")
@click.option("--data-dir", type=click.Path())
@click.option("--target", "target_name", metavar="TARGET",
              help="Write a firmware project for TARGET instead (the same as "
              "'tflmp firmware MODEL --target TARGET').")
@click.option("--trust-model", is_flag=True,
              help="Load a Keras file even if its Lambda layers run code stored in it.")
@click.option("--no-offline-plan", "no_offline_plan", is_flag=True,
              help="Keep TFLM's greedy memory plan: write no offline tensor placement.")
def convert(model, c_array, name, out, dataset, data_dir, target_name, trust_model,
            no_offline_plan):
    """Convert MODEL (.tflite, run folder or Keras .h5) for a microcontroller."""
    from . import console

    if target_name:
        given = [flag for flag, value in (("--c-array", c_array), ("--dataset", dataset),
                                          ("--data-dir", data_dir),
                                          ("--trust-model", trust_model)) if value]
        if given:
            raise TflmpError(f"convert --target writes a firmware project, which takes no "
                             f"{', '.join(given)}; drop them or use 'tflmp convert' without "
                             "--target")
        from .commands.firmware import firmware as make_firmware

        console.firmware_result(make_firmware(model, target_name, out, name=name,
                                              offline_plan=not no_offline_plan))
        return
    from .commands.convert import convert as run_convert

    console.convert_result(run_convert(model, out, name=name, c_array=c_array, dataset=dataset,
                                       data_dir=data_dir, trust_model=trust_model,
                                       offline_plan=not no_offline_plan))


@cli.command()
@click.argument("source", type=click.Path())
@click.option("--target", "target_name", required=True, metavar="TARGET",
              help="arduino-nano33ble, esp32, esp-idf or platformio.")
@click.option("--out", type=click.Path(), help="Project folder (default RUN/firmware/TARGET).")
@click.option("--name", help="Model name for C identifiers and file names.")
@click.option("--task", type=click.Choice(["classification", "regression", "autoencoder",
                                           "anomaly"]),
              help="A .tflite from outside a run: what its output is (default classification; "
              "anomaly = autoencoder).")
@click.option("--threshold", metavar="auto|VALUE",
              help="Anomaly detection (or binary classification: class 1): the score above "
              "which the device reports an anomaly (class 1) (default: the run's; auto "
              "chooses it on --dataset's validation split).")
@click.option("--labels", help="A .tflite from outside a run: class names, comma-separated "
              "(default class_0..class_N-1).")
@click.option("--dataset", help="A .tflite from outside a run: test data for the golden vectors "
              "and for measuring a Dense re-quantization.")
@click.option("--data-dir", type=click.Path())
@click.option("--check", is_flag=True,
              help="Compile every source against --tflm-dir and run the golden self-test "
              "(host, QEMU M4).")
@click.option("--tflm-dir", type=click.Path(), help="TFLM source tree for --check.")
@click.option("--no-qemu", is_flag=True, help="With --check: host only.")
@click.option("--no-offline-plan", "no_offline_plan", is_flag=True,
              help="Keep TFLM's greedy memory plan: write no offline tensor placement.")
def firmware(source, target_name, out, name, task, threshold, labels, dataset, data_dir, check,
             tflm_dir, no_qemu, no_offline_plan):
    """Write a ready-to-build firmware project for SOURCE (run folder or .tflite)."""
    from . import console
    from .commands.firmware import firmware as make_firmware

    names = [x.strip() for x in labels.split(",")] if labels else None
    result = make_firmware(source, target_name, out, name=name, task=task,
                           threshold=None if threshold is None else
                           "auto" if parse_threshold(threshold) is None else float(threshold),
                           labels=names,
                           dataset=dataset, data_dir=data_dir, check=check, tflm_dir=tflm_dir,
                           qemu=False if no_qemu else None,
                           offline_plan=not no_offline_plan)
    console.firmware_result(result)
    if not result.passed:
        raise TflmpError("the generated firmware failed its self-test against that TFLM tree")


@cli.command()
@click.argument("project", type=click.Path())
@click.option("--port", required=True, help="Serial port of the board, e.g. /dev/ttyACM0.")
@click.option("--env", help="PlatformIO environment (board) to build and upload.")
@click.option("--dry-run", is_flag=True, help="Print the commands instead of running them.")
def flash(project, port, env, dry_run):
    """Set up (once), build and upload a project written by 'tflmp firmware'."""
    from . import console
    from .commands.flash import flash as run_flash

    console.flash_result(run_flash(project, port, env=env, dry_run=dry_run))


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
@click.option("--target", "target_name", metavar="TARGET",
              help="Also run the split on this target's own TFLM build (with --tflm-dir).")
@click.option("--tflm-dir", type=click.Path(),
              help="The TFLM tree TARGET links (as for firmware --check), built for this host.")
@click.option("--data", "new_data", type=click.Path(),
              help="Score a new file or folder (run folders) read with the run's own format "
              "options; without labels, write its predictions.")
@click.option("--qemu", type=int, metavar="N",
              help="Also run N evenly spaced samples on TARGET's tree built for the "
              "Cortex-M4 under QEMU: byte-equal share and instructions per inference.")
@click.option("--kernels", type=click.Choice(["target", "reference", "optimized"]),
              default="target", show_default=True,
              help="With --tflm-dir: the tree's own optimized kernels in portable C "
              "(CMSIS-NN, ESP-NN ANSI C), its reference kernels, or ESP-NN's default "
              "generic optimized C.")
@click.option("--out", type=click.Path(), help="Write the results as JSON here.")
def verify(model, dataset, data_dir, split, preprocessing, workers, ladder, tolerance,
           target_name, tflm_dir, new_data, qemu, kernels, out):
    """Run MODEL over a dataset split in the real TFLM interpreter."""
    from . import console
    from .artifacts import write_json
    from .commands.verify import verify as run_verify

    result = run_verify(model, dataset=dataset, data_dir=data_dir, split=split,
                        preprocessing=preprocessing, workers=workers, ladder=ladder,
                        tolerance=tolerance, target=target_name, tflm_dir=tflm_dir,
                        data=new_data, qemu=qemu, kernels=kernels)
    console.verify_result(result)
    if out:
        console.wrote(write_json(out, result.to_dict()))


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--board", help="Check the fit on this board (see the table without it).")
@click.option("--boards-file", type=click.Path(), help="Your boards YAML, merged over ours.")
@click.option("--measured-us", type=float,
              help="Latency measured on the board (the self-test prints it) to narrow the band.")
@click.option("--measured-macs", type=int,
              help="MACs of the model --measured-us was measured on (default: this model).")
@click.option("--measured-instructions", type=int,
              help="Cortex-M4 instructions per inference that 'firmware --check' counted "
              "under QEMU: the band becomes count x calibrated cycles per instruction.")
@click.option("--measure", is_flag=True,
              help="Count those instructions now: one inference on --tflm-dir built for the "
              "Cortex-M4 under QEMU (needs --board).")
@click.option("--tflm-dir", type=click.Path(), help="The TFLM tree --board's target links, "
              "for --measure.")
@click.option("--out", type=click.Path(), help="Write the profile as JSON here.")
def profile(model, board, boards_file, measured_us, measured_macs, measured_instructions,
            measure, tflm_dir, out):
    """Per-layer MACs and memory, memory plan, flash, latency band and board fit of MODEL
    (a .tflite or a run folder).  Exits with 2 when it does not fit --board or meets a
    known kernel bug of its TFLM that firmware refuses (firmware/known_issues.yaml)."""
    from . import console
    from .artifacts import write_json
    from .commands.profile import profile as run_profile

    p = run_profile(model, board=board, boards_file=boards_file, measured_us=measured_us,
                    measured_macs=measured_macs, measured_instructions=measured_instructions,
                    measure=measure, tflm_dir=tflm_dir)
    console.profile_result(p)
    if out:
        console.wrote(write_json(out, p.to_dict()))
    if p.board is not None and not p.board.fit.fits:
        raise TflmpError(p.board.fit.message)
    if p.refusal:  # a known kernel bug of the board's TFLM: tflmp firmware refuses it
        raise TflmpError(p.refusal)


@cli.command()
def models():
    """The model zoo: task, reference input shape, parameters and MACs of each."""
    from . import console
    from .commands.models import list_models

    console.models_table(list_models())


@cli.command()
@click.option("--boards-file", type=click.Path(), help="Your boards YAML, merged over ours.")
def boards(boards_file):
    """The boards models are checked against: core, clock, RAM, flash, TFLM release."""
    from . import console
    from .commands.boards import list_boards

    console.boards_table(list_boards(boards_file))


@cli.command()
def targets():
    """The firmware targets: what each project builds with and the TFLM it links."""
    from . import console
    from .commands.targets import list_targets

    console.targets_table(list_targets())


@cli.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def report(run_dir):
    """Regenerate RUN_DIR's report.md and report.html from its report.json."""
    from . import console
    from .commands.report import report as run_report

    result = run_report(run_dir)
    console.wrote(result.markdown, result.html)


@cli.command()
@click.argument("run_a", type=click.Path(exists=True, file_okay=False))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(), help="Folder or file name (default: here, compare.*).")
def compare(run_a, run_b, out):
    """Put two runs side by side: ledger, sizes, timings, config differences."""
    from . import console
    from .commands.compare import compare as run_compare

    console.wrote(run_compare(run_a, run_b, out).html)


def parse_threshold(text: str | None) -> float | None:
    """``--threshold``: None for auto (or not given), else the number."""
    if text is None or text.strip().lower() == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise TflmpError(f"--threshold takes 'auto' or a number, got '{text}'") from None


@cli.group()
def data():
    """Look at a dataset before training on it."""


@data.command("check")
@click.argument("dataset")
@click.option("--data-dir", type=click.Path(), help="Folder with the dataset's idx .gz files.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", default="7:2:1", show_default=True,
              help="train:val:test ratio for data given as one array pair.")
@click.option("--val-split", type=float, default=0.1, show_default=True,
              help="Share of train carved out for validation when the data has no val split.")
@click.option("--window", type=int, help="CSV data: rows per window.")
@click.option("--stride", type=int, help="CSV data: rows between window starts.")
@click.option("--label-column", default="label", show_default=True, help="CSV data: label column.")
@click.option("--columns", help="CSV data: comma-separated channel columns.")
@click.option("--image-size", metavar="HxW", help="Image folders: size, e.g. 96x96.")
@click.option("--color", type=click.Choice(["grayscale", "rgb"]), default="grayscale",
              show_default=True)
@click.option("--group-column", metavar="COLUMN|PATTERN", help="As for train.")
@click.option("--missing", type=click.Choice(["error", "drop", "interpolate"]), default="error",
              show_default=True)
@click.option("--duplicates", type=click.Choice(["drop", "keep", "error"]), default="drop",
              show_default=True)
@click.option("--subset", type=int, metavar="N", help="At most N samples per split.")
@click.option("--no-near", is_flag=True, help="Skip the near-duplicate search.")
@click.option("--out", type=click.Path(), help="Write the findings as JSON here.")
def data_check(dataset, split, columns, image_size, no_near, out, val_split, **options):
    """Check DATASET: leaks across splits, duplicates, class balance, missing values,
    outliers and constant channels (what every train records in report.json)."""
    from . import console
    from .artifacts import write_json
    from .commands.data import check
    from .data import DataSpec
    from .data.spec import parse_size, parse_split

    spec = DataSpec(dataset, split=parse_split(split), val_fraction=val_split,
                    columns=tuple(c.strip() for c in columns.split(",") if c.strip())
                    if columns else None,
                    image_size=parse_size(image_size) if image_size else None, **options)
    result = check(spec, near=not no_near)
    console.data_check_result(result)
    if out:
        console.wrote(write_json(out, result.to_dict()))


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", type=click.Path(), help="Write the findings as JSON here.")
def doctor(run_dir, out):
    """Say what is wrong with RUN_DIR and what to try, one line per finding with its
    evidence (exit 0 with or without findings, 2 when RUN_DIR is not a run)."""
    from . import console
    from .artifacts import write_json
    from .commands.doctor import doctor as run_doctor

    result = run_doctor(run_dir)
    console.doctor_result(result)
    if out:
        console.wrote(write_json(out, result.to_dict()))


@cli.command()
@click.option("--model", default="lenet", show_default=True,
              help="A zoo model or path.py[:function]; its SEARCH_SPACE is searched.")
@click.option("--dataset", default="digits", show_default=True,
              help="As for train: digits, mnist, fashion-mnist, or a data path.")
@click.option("--data-dir", type=click.Path(), help="Folder with the dataset's idx .gz files.")
@click.option("--task", type=click.Choice(["classification", "regression", "autoencoder"]))
@click.option("--trials", type=int, default=20, show_default=True,
              help="Trials in the study (all workers together); rerun to resume.")
@click.option("--timeout", type=float, help="Stop starting trials after this many seconds.")
@click.option("--board", help="Each trial's firmware must fit this board (tflmp boards).")
@click.option("--boards-file", type=click.Path(), help="Your boards YAML, merged over ours.")
@click.option("--max-flash", metavar="SIZE", help="Most bytes of int8 model (e.g. 16KB).")
@click.option("--max-ram", metavar="SIZE", help="Most bytes of tensor arena (e.g. 8KB).")
@click.option("--max-latency-ms", type=float,
              help="Most milliseconds per inference on --board (upper end of its band).")
@click.option("--epochs", type=int, default=30, show_default=True,
              help="Most float epochs a trial trains (the search goes down to a third).")
@click.option("--qat-epochs", type=int, default=3, show_default=True,
              help="Most QAT epochs a trial fine-tunes (the search goes down to 0).")
@click.option("--patience", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val-split", type=float, default=0.1, show_default=True)
@click.option("--split", default="7:2:1", show_default=True)
@click.option("--window", type=int, help="CSV data: the largest window (searched down to half).")
@click.option("--stride", type=int, help="CSV data: rows between window starts.")
@click.option("--label-column", default="label", show_default=True)
@click.option("--columns", help="CSV data: comma-separated channel columns.")
@click.option("--image-size", metavar="HxW", help="Image folders: the largest input size.")
@click.option("--color", type=click.Choice(["grayscale", "rgb"]), default="grayscale",
              show_default=True)
@click.option("--workers", type=int, help="Processes for TFLM evaluation (default: all CPUs).")
@click.option("--out", type=click.Path(), help="Tune folder (default tune/<model>-<data>).")
@click.option("--storage", metavar="URL", help="Optuna database URL shared by workers, e.g. "
              "postgresql://user:pw@host/db (default: sqlite in the tune folder).")
@click.option("--study", metavar="NAME", help="Study name in --storage (default: the tune "
              "folder's name).")
def tune(trials, timeout, board, boards_file, max_flash, max_ram, max_latency_ms, out,
         storage, study, **options):
    """Search model size, training and input knobs for the best int8 model that fits."""
    from . import console
    from .commands.tune import tune as run_tune
    from .config import RunConfig
    from .data.spec import parse_size, parse_split
    from .tuning.space import Limits, parse_bytes

    options["split"] = parse_split(options["split"])
    if options["image_size"]:
        options["image_size"] = parse_size(options["image_size"])
    if options["columns"]:
        options["columns"] = tuple(c.strip() for c in options["columns"].split(",") if c.strip())
    limits = Limits(board, parse_bytes(max_flash, "--max-flash") if max_flash else None,
                    parse_bytes(max_ram, "--max-ram") if max_ram else None, max_latency_ms)
    result = run_tune(RunConfig(**options), out, trials=trials, timeout=timeout, limits=limits,
                      boards_file=boards_file, storage=storage, study=study,
                      on_trial=console.tune_progress)
    console.tune_summary(result)


def main(argv=None) -> int:
    from . import console

    console.install_logging()
    try:
        cli.main(args=argv, prog_name="tflmp", standalone_mode=False)
    except TflmpError as e:
        console.error(str(e))
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
