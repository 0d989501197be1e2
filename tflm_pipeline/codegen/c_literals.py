"""Values as C: identifiers any ``--name`` can become, float and string literals, and
the CamelCase of C++ type names."""

from __future__ import annotations

import math
import re
import unicodedata

from ..artifacts import sha256_bytes

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


def camel_case(ident: str) -> str:
    """lenet_v2 -> LenetV2 (for C++ type and function names)."""
    return "".join(p[:1].upper() + p[1:] for p in ident.split("_") if p) or "Model"


def macro_name(key: str) -> str:
    """'frame_length_ms' -> 'FRAME_LENGTH_MS'."""
    return re.sub(r"[^A-Za-z0-9]+", "_", key).strip("_").upper()


def c_float(value: float) -> str:
    """A float literal that reads back as the same float32 (9 significant digits)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value} as a C float literal")
    text = f"{value:.9g}"
    if not any(c in text for c in ".e"):
        text += ".0"
    return text + "f"


def c_double(value: float) -> str:
    """A double literal that reads back as the same double (17 significant digits)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value} as a C double literal")
    text = f"{value:.17g}"
    return text if any(c in text for c in ".e") else text + ".0"


def c_string(text: str) -> str:
    """A C string literal: printable ASCII kept, everything else as octal UTF-8 bytes."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F and ch != "?":  # '?' could start a trigraph
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_value(value) -> str:
    """A number, bool or string as a C literal (for #define values)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return c_float(value)
    return c_string(str(value))
