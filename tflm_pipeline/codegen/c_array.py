"""The model as a C array: ``<name>_model_data.h`` / ``.cc``.

The array is ``alignas(16) const`` (TFLM reads the flatbuffer in place from flash),
named after the model, and its bytes equal the ``.tflite`` exactly.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np

from .. import __version__
from ..artifacts import sha256_bytes, write_text
from .templates import render

BYTES_PER_LINE = 12

# C and C++ keywords plus names the TFLM headers or libc already use.
_RESERVED = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t
char16_t char32_t class compl concept const consteval constexpr constinit const_cast
continue co_await co_return co_yield decltype default delete do double dynamic_cast else
enum explicit export extern false float for friend goto if inline int long mutable
namespace new noexcept not not_eq nullptr operator or or_eq private protected public
register reinterpret_cast requires restrict return short signed sizeof static
static_assert static_cast struct switch template this thread_local throw true try typedef
typeid typename union unsigned using virtual void volatile wchar_t while xor xor_eq
_Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert
_Thread_local main tflite errno assert
""".split())


def c_identifier(name: str) -> str:
    """Turn any ``--name`` into a valid, non-reserved C identifier (never injectable).

    Accents are folded to ASCII, every other character outside ``[A-Za-z0-9_]``
    becomes ``_``, a leading digit gets a ``m_`` prefix, and keywords get a ``_model``
    suffix.  When non-ASCII letters had to be dropped, a short hash of the original
    name keeps different names apart ("модель" and "模型" do not both become "model").
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ident = re.sub(r"[^A-Za-z0-9_]", "_", folded)
    ident = re.sub(r"_+", "_", ident).strip("_")
    if not name.isascii() or not ident:
        ident = "_".join(filter(None, [ident or "model", sha256_bytes(name.encode())[:6]]))
    if ident[0].isdigit():
        ident = "m_" + ident
    if ident in _RESERVED or ident.startswith("__"):
        ident += "_model"
    return ident


def format_bytes(data: bytes, per_line: int = BYTES_PER_LINE) -> str:
    """Comma-separated hex bytes, ``per_line`` to a line, two-space indented.

    Vectorised through a 256-entry lookup table: a 10 MB model formats in well under
    a second.
    """
    if not data:
        return ""
    table = np.array([f"0x{b:02x}, ".encode() for b in range(256)], dtype="S6")
    cells = table[np.frombuffer(data, dtype=np.uint8)]
    pad = (-len(cells)) % per_line
    full = np.concatenate([cells, np.full(pad, b"", dtype="S6")]) if pad else cells
    rows = full.view(np.uint8).reshape(-1, per_line * 6)
    prefix = np.full((rows.shape[0], 2), ord(" "), dtype=np.uint8)
    newline = np.full((rows.shape[0], 1), ord("\n"), dtype=np.uint8)
    text = np.hstack([prefix, rows, newline]).tobytes().replace(b"\x00", b"")
    # ", \n" -> ",\n" at line ends and drop the trailing separator.
    return text.decode("ascii").replace(", \n", ",\n").rstrip(",\n")


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
    paths = []
    for template, file_name in (("model/model_data.h.j2", header),
                                ("model/model_data.cc.j2", f"{ident}_model_data.cc")):
        body = format_bytes(model) if file_name.endswith(".cc") else ""
        text = render(template, file_name=file_name, body=body, **context)
        paths.append(write_text(out_dir / file_name, text))
    return paths
