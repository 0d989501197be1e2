"""``tflmp profile``: per-layer MACs and memory, the memory plan, flash, and the fit and
latency band on every board (or one ``--board`` in detail) of a ``.tflite`` or a run's
selected model."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from ..codegen.c_literals import camel_case
from ..codegen.op_resolver import write_op_resolver
from ..errors import TflmpError
from ..mcu.boards import boards, get_board
from ..mcu.device_profile import DeviceProfile, device_profile
from ..mcu.build_check import find_tree
from ..mcu.latency import Measurement
from ..mcu.qemu_harness import QemuRun, build_qemu_harness, run_qemu
from ..mcu.targets import get_target
from ..runs import resolve
from ..tflite.model_info import read_model, read_model_bytes
from ..tflm.interpreter import find_arena_size


def profile(model: str | Path, *, board: str | None = None, boards_file: str | Path | None = None,
            measured_us: float | None = None,
            measured_macs: int | None = None,
            measured_instructions: int | None = None,
            measure: bool = False, tflm_dir: str | Path | None = None) -> DeviceProfile:
    """The device profile of ``model``; ``measured_us`` (the firmware self-test's latency
    on ``board``, of this model or of one with ``measured_macs``) narrows its band.

    The result's ``board.fit.fits`` says whether the model fits ``board``; the CLI exits
    with 2 when it does not.

    ``measure`` counts the instructions itself: one inference on the board target's TFLM
    tree ``tflm_dir`` built for the Cortex-M4 under QEMU (as ``verify --qemu``), then
    as ``measured_instructions``.
    """
    if measured_us is not None and not board:
        raise TflmpError("--measured-us needs --board (the clock it was measured at)")
    if measured_instructions is not None and not board:
        raise TflmpError("--measured-instructions needs --board (its clock and kernels)")
    if measured_instructions is not None and measured_us is not None:
        raise TflmpError("give --measured-us or --measured-instructions, not both")
    if measure and (not board or tflm_dir is None):
        raise TflmpError("--measure needs --board and --tflm-dir (the TFLM tree that board's "
                         "target links): it counts Cortex-M4 instructions under QEMU")
    if measure and (measured_us is not None or measured_instructions is not None):
        raise TflmpError("--measure counts the instructions itself: drop --measured-us and "
                         "--measured-instructions")
    boards(boards_file)  # a bad boards file is one clear error before any work
    if board:
        get_board(board, boards_file)
    data = read_model_bytes(resolve(model).model_path)
    info = read_model(data)
    host = find_arena_size(data, info=info).bytes
    ops = build = None
    if measure:
        run, build = _count_instructions(resolve(model).model_path, info,
                                         get_board(board, boards_file), tflm_dir, host)
        measured_instructions, ops = run.median_instructions, run.op_instructions
    measured = (Measurement(measured_us, measured_macs) if measured_us is not None
                else Measurement(instructions=measured_instructions, build=build)
                if measured_instructions is not None else None)
    result = device_profile(info, host, board=board, boards_file=boards_file, measured=measured)
    return dataclasses.replace(result, measured_ops=ops) if ops is not None else result


def _count_instructions(model_path: Path, info, board, tflm_dir,
                        host_arena: int) -> tuple[QemuRun, str]:
    """Cortex-M4 instructions (total and per op) of one inference of an all-zero input on
    ``tflm_dir`` compiled at the optimisation level of the board's first target, and
    which build that was."""
    if board.kernels.cycles_per_instruction is None:
        raise TflmpError(f"{board.name}'s kernels ({board.kernels.name}) have no calibrated "
                         "cycles per instruction: --measure counts Cortex-M4 instructions of "
                         "CMSIS-NN builds; use --measured-us from the board instead")
    if not board.targets:
        raise TflmpError(f"{board.name} names no firmware target whose ops to register")
    target = get_target(board.targets[0])
    tree = find_tree(Path(tflm_dir)).for_target(target)  # compiled as the board build is
    t_in = info.inputs[0]
    x = np.zeros((1, *t_in.shape[1:]), t_in.dtype)
    with tempfile.TemporaryDirectory(prefix="tflmp-profile-measure-") as tmp:
        tmp = Path(tmp)
        write_op_resolver(info, "model", tmp, ops=target.registrations(info),
                          op_sources=target.op_sources)
        elf = build_qemu_harness(tree, tmp, "model", camel_case("model"), tmp,
                                 2 * host_arena + 65536)
        return run_qemu(elf, model_path, info, x), tree.cortex_m4_build
