"""``tflmp profile``: per-layer MACs and memory, the memory plan, flash, and the fit and
latency band on every board (or one ``--board`` in detail) of a ``.tflite`` or a run's
selected model."""

from __future__ import annotations

from pathlib import Path

from ..errors import TflmpError
from ..mcu.boards import boards, get_board
from ..mcu.device_profile import DeviceProfile, device_profile
from ..mcu.latency import Measurement
from ..runs import resolve
from ..tflite.model_info import read_model, read_model_bytes
from ..tflm.interpreter import find_arena_size


def profile(model: str | Path, *, board: str | None = None, boards_file: str | Path | None = None,
            measured_us: float | None = None,
            measured_macs: int | None = None,
            measured_instructions: int | None = None) -> DeviceProfile:
    """The device profile of ``model``; ``measured_us`` (the firmware self-test's latency
    on ``board``, of this model or of one with ``measured_macs``) narrows its band.

    The result's ``board.fit.fits`` says whether the model fits ``board``; the CLI exits
    with 2 when it does not.
    """
    if measured_us is not None and not board:
        raise TflmpError("--measured-us needs --board (the clock it was measured at)")
    if measured_instructions is not None and not board:
        raise TflmpError("--measured-instructions needs --board (its clock and kernels)")
    if measured_instructions is not None and measured_us is not None:
        raise TflmpError("give --measured-us or --measured-instructions, not both")
    boards(boards_file)  # a bad boards file is one clear error before any work
    if board:
        get_board(board, boards_file)
    data = read_model_bytes(resolve(model).model_path)
    info = read_model(data)
    host = find_arena_size(data, info=info).bytes
    measured = (Measurement(measured_us, measured_macs) if measured_us is not None
                else Measurement(instructions=measured_instructions)
                if measured_instructions is not None else None)
    return device_profile(info, host, board=board, boards_file=boards_file, measured=measured)
