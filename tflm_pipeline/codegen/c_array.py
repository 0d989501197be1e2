"""The model as a C array: ``<name>_model_data.h`` / ``.cc``.

The array is ``alignas(16) const`` (TFLM reads the flatbuffer in place from flash),
named after the model, and its bytes equal the ``.tflite`` exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..artifacts import sha256_bytes, write_bytes, write_text
from ..firmware_files import render
from .c_literals import c_identifier

BYTES_PER_LINE = 12


def format_bytes(data: bytes, per_line: int = BYTES_PER_LINE) -> str:
    """Comma-separated hex bytes, ``per_line`` to a line, two-space indented."""
    return b"".join(_hex_lines(data, per_line)).decode("ascii")


def _hex_lines(data: bytes, per_line: int = BYTES_PER_LINE) -> list:
    """:func:`format_bytes` as ASCII chunks (buffers, written without joining).

    Every byte becomes a fixed 6-character cell ("0xNN, ") through a lookup table, so
    the full lines are one fixed-width NumPy array: a 10 MB model formats in about a
    tenth of a second.
    """
    if not data:
        return []
    cells = _CELLS[np.frombuffer(data, dtype=np.uint8)].view(np.uint8)
    rows, rest = divmod(len(data), per_line)
    lines = np.empty((rows, 2 + 6 * per_line), dtype=np.uint8)
    lines[:, :2] = ord(" ")
    lines[:, 2:] = cells[:rows * per_line * 6].reshape(rows, 6 * per_line)
    lines[:, -1] = ord("\n")  # over the last cell's space: "0xNN,\n"
    body = memoryview(lines.reshape(-1))
    if rest:  # a last, shorter line without the final ", "
        return [body, b"  " + cells[rows * per_line * 6:-2].tobytes()]
    return [body[:-2]]  # without the final ",\n"


_CELLS = np.frombuffer(b"".join(f"0x{b:02x}, ".encode() for b in range(256)), dtype="S6")


def write_c_array(model: bytes, name: str, out_dir: str | Path, *,
                  source: str = "model.tflite") -> list[Path]:
    """Write ``<name>_model_data.h`` and ``.cc`` into ``out_dir``; return their paths."""
    ident = c_identifier(name)
    out_dir = Path(out_dir)
    header = f"{ident}_model_data.h"
    context = {
        "name": ident, "array": f"{ident}_model_data", "header": header,
        "guard": f"{ident.upper()}_MODEL_DATA_H_", "size": len(model),
        "sha256": sha256_bytes(model), "tool_version": __version__,
        "source": Path(source).name,
    }
    paths = [write_text(out_dir / header, render("model/model_data.h.j2", file_name=header,
                                                 body="", **context))]
    # The array body goes in as bytes, spliced into the rendered text: a 10 MB model
    # is 60 MB of C, not worth a round trip through str.
    cc = f"{ident}_model_data.cc"
    before, after = render("model/model_data.cc.j2", file_name=cc, body=_BODY,
                           **context).split(_BODY)
    paths.append(write_bytes(out_dir / cc, [before.encode(), *_hex_lines(model), after.encode()]))
    return paths


_BODY = "@@tflmp-array-body@@"
