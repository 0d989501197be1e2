"""How long one inference takes on a board: a band from the model's MACs and the cycles
per MAC its kernels need on its core (``firmware/boards.yaml``, calibrated on published
MLPerf Tiny and esp-tflite-micro results), narrowed by a measurement when there is one:
a time measured on the board, or Cortex-M4 instructions counted under QEMU priced with
the cycles per instruction of the model's kernel family (mcu/cpi.py).

Layers with MACs cost ``macs x cycles_per_mac``; layers without (pooling, softmax,
element-wise, reshape) cost ``elements x cycles_per_element``, counting every element
they read or write.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import TflmpError
from ..tflite.layers import LayerProfile
from .boards import Board
from .cpi import kernel_family

# A measurement of this very model leaves clock and timer noise; one of another model
# also its different mix of layer shapes.
SAME_MODEL_SPREAD = 0.10
OTHER_MODEL_SPREAD = 0.30


@dataclass(frozen=True)
class Measurement:
    us: float | None = None  # microseconds per inference, as the board's self-test prints
    macs: int | None = None  # MACs of the measured model; None: the model being estimated
    # Cortex-M4 instructions per inference of this model, as `firmware --check` counts
    # them under QEMU -icount (instead of a time measured on the board)
    instructions: int | None = None
    build: str | None = None  # which build counted them, in words (profile --measure)


@dataclass(frozen=True)
class Band:
    low_ms: float
    high_ms: float
    basis: str

    def to_dict(self) -> dict:
        return {"low_ms": self.low_ms, "high_ms": self.high_ms, "basis": self.basis}

    @property
    def text(self) -> str:
        """'410-586' (ms, three significant digits below 100)."""
        return f"{_ms(self.low_ms)}-{_ms(self.high_ms)}"


def latency_band(layers: list[LayerProfile], board: Board,
                 measured: Measurement | None = None) -> Band:
    """Inference time band of a model (its :func:`tflite.layers.layers`) on ``board``."""
    macs = sum(r.macs for r in layers)
    elements = sum(r.elements for r in layers if not r.macs)
    k = board.kernels
    hz = board.clock_mhz * 1e6
    if measured is None:
        lo, hi = (macs * c + elements * e for c, e in zip(k.cycles_per_mac, k.cycles_per_element))
        return Band(1e3 * lo / hz, 1e3 * hi / hz,
                    f"{macs:,} MACs x {k.cycles_per_mac[0]:g}-{k.cycles_per_mac[1]:g} cycles "
                    f"and {elements:,} elements of MAC-free layers x "
                    f"{k.cycles_per_element[0]:g}-{k.cycles_per_element[1]:g} cycles "
                    f"({k.name}) at {board.clock_mhz:g} MHz")
    if measured.instructions is not None:
        band = _instruction_band(measured.instructions, board,
                                 kernel_family([r.op for r in layers]))
        if measured.build:
            band = Band(band.low_ms, band.high_ms, f"{band.basis}; counted on {measured.build}")
        return band
    if measured.us <= 0 or (measured.macs is not None and measured.macs <= 0):
        raise TflmpError("a measured latency needs a time > 0 us and the measured model's "
                         "MACs > 0")
    if measured.macs is None and not macs:
        raise TflmpError("the model has no MACs to scale a measurement by")
    same = measured.macs is None or measured.macs == macs
    ref_macs = macs if measured.macs is None else measured.macs
    cycles_per_mac = measured.us * board.clock_mhz / ref_macs
    spread = SAME_MODEL_SPREAD if same else OTHER_MODEL_SPREAD
    centre = macs * cycles_per_mac / hz * 1e3
    where = "this model" if same else f"a {ref_macs:,}-MAC model"
    basis = (f"measured {measured.us:,.0f} us for {where} on {board.name} = "
             f"{cycles_per_mac:.2f} cycles/MAC at {board.clock_mhz:g} MHz, "
             f"+-{spread:.0%}")
    lo_c, hi_c = k.cycles_per_mac
    if not lo_c <= cycles_per_mac <= hi_c:
        basis += (f"; outside {k.name}'s {lo_c:g}-{hi_c:g} cycles/MAC: check the clock and "
                  "which kernels the build links")
    return Band(centre * (1 - spread), centre * (1 + spread), basis)


def _instruction_band(instructions: int, board: Board, family: str) -> Band:
    """Counted instructions x the calibrated cycles per instruction of the model's
    kernel family (mcu/cpi.py): the calibration's spread widened by its validation error."""
    k = board.kernels
    if instructions <= 0:
        raise TflmpError("--measured-instructions must be a count > 0 (firmware --check "
                         "prints it for the Cortex-M4)")
    if k.cycles_per_instruction is None:
        raise TflmpError(f"{board.name}'s kernels ({k.name}) have no calibrated cycles per "
                         "instruction: counted instructions are Cortex-M4 instructions of "
                         "CMSIS-NN builds; use --measured-us from the board instead")
    factor = k.instruction_factor(family)
    lo, hi = factor.band
    hz = board.clock_mhz * 1e6
    fitted = f"{factor.factors[0]:.3g}-{factor.factors[1]:.3g}"
    if factor.validation_error:
        fitted += f" +-{factor.validation_error:.1%} validation error"
    return Band(1e3 * instructions * lo / hz, 1e3 * instructions * hi / hz,
                f"{instructions:,} Cortex-M4 instructions (QEMU -icount) x {lo:.3g}-{hi:.3g} "
                f"cycles per instruction for {family} models ({k.name}: {fitted}, "
                f"calibrated on MLPerf Tiny results) at {board.clock_mhz:g} MHz")


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
