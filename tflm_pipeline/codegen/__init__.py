"""C/C++ sources and firmware projects, written from values handed in.

Codegen never converts, evaluates or measures anything: the model bytes, its facts, the
op registrations, the arena, the golden vectors and the preprocessing all come from the
caller (the ``convert`` and ``firmware`` commands), so every number in the generated C
has exactly one source.
"""

from __future__ import annotations

from pathlib import Path

from ..mcu.arena import ArenaEstimate
from ..mcu.releases import OpRegistration
from ..preprocessing import Preprocessing
from ..tasks import Threshold
from ..tflite.model_info import ModelInfo
from .c_array import write_c_array
from .op_resolver import write_op_resolver
from .settings import write_settings_header


def write_model_sources(model: bytes, info: ModelInfo, ident: str, out_dir: str | Path, *,
                        ops: list[OpRegistration], op_sources: str,
                        arena: ArenaEstimate | None, preprocessing: Preprocessing | None = None,
                        labels: list[str] | None = None,
                        threshold: Threshold | None = None,
                        source: str = "model.tflite",
                        positive_threshold: Threshold | None = None,
                        stream_hop: int | None = None) -> list[Path]:
    """The model's C files: data array (.h/.cc), settings header, op resolver header.
    ``labels`` default to the preprocessing's; ``threshold`` is an anomaly detector's,
    ``positive_threshold`` a binary classifier's; ``stream_hop`` is a sensor run's stride
    (streaming constants)."""
    return [*write_c_array(model, ident, out_dir, source=source),
            write_settings_header(info, ident, out_dir, preprocessing=preprocessing,
                                  arena=arena, labels=labels, threshold=threshold,
                                  source=source, positive_threshold=positive_threshold,
                                  stream_hop=stream_hop),
            write_op_resolver(info, ident, out_dir, ops=ops, op_sources=op_sources,
                              source=source)]
