"""Cycles per counted instruction: from Cortex-M4 instructions (QEMU -icount) to a
board's clock cycles, one factor per kernel family, fitted on published latencies.

The family matters: on the NUCLEO-L4R5ZI (MLPerf Tiny v0.5 reference, TFLM with 2020's
CMSIS-NN, counted with the published build's -Os) models with depthwise convolutions
ran 2.2-2.3 cycles per instruction, models without (ResNet-8, the dense autoencoder)
1.7-1.8 (docs/BENCHMARKS.md, bench/latency_calibration.py).
"""

from __future__ import annotations

from ..errors import TflmpError

DEPTHWISE = "depthwise"
CONV_DENSE = "conv-dense"
FAMILIES = (DEPTHWISE, CONV_DENSE)


def kernel_family(op_names: list[str]) -> str:
    """The calibration family of a model from its op names: depthwise-separable nets
    (any DEPTHWISE_CONV_2D) or plain convolution / dense nets."""
    return DEPTHWISE if "DEPTHWISE_CONV_2D" in op_names else CONV_DENSE


def fit_cycles_per_instruction(rows: list[dict]) -> dict[str, float]:
    """One factor per family over calibration rows (``family``, ``instructions``,
    ``published_cycles``): the family's cycles over its instructions."""
    sums: dict[str, list[float]] = {}
    for r in rows:
        if r["instructions"] <= 0 or r["published_cycles"] <= 0:
            raise TflmpError(f"{r.get('model', 'a row')}: instructions and published cycles "
                             "must be > 0")
        s = sums.setdefault(r["family"], [0.0, 0.0])
        s[0] += r["published_cycles"]
        s[1] += r["instructions"]
    return {family: cycles / instructions for family, (cycles, instructions) in sums.items()}


def predict_ms(instructions: int, family: str, factors: dict[str, float],
               clock_mhz: float) -> float:
    """Milliseconds per inference of ``instructions`` at the family's factor."""
    if family not in factors:
        raise TflmpError(f"no calibrated cycles per instruction for the {family} family "
                         f"(calibrated: {', '.join(sorted(factors)) or 'none'})")
    return instructions * factors[family] / (clock_mhz * 1e3)
