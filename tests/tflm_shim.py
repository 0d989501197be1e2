"""Declarations of the TFLM C++ API the generated code uses, per TFLM source version.

CI has no TFLM source (it is never committed here), so generated sources are compiled
against these declarations: real compilers, real type checking of every call and of
every resolver method against the methods that version declares (firmware/tflm_ops.json).
Linking and running against a real tree is `tflmp firmware --check --tflm-dir`.
"""

import re
import subprocess
from pathlib import Path

import numpy as np

from tflm_pipeline.firmware_files import render
from tflm_pipeline.mcu.releases import get_release, op_tables
from tflm_pipeline.mcu.targets import get_target

_COMMON = """#pragma once
#include <stddef.h>
#include <stdint.h>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef union { int32_t* i32; float* f; int8_t* int8; uint8_t* uint8; int16_t* i16;
                void* raw; const void* raw_const; } TfLitePtrUnion;
typedef struct { TfLitePtrUnion data; size_t bytes; } TfLiteTensor;
"""

_INTERPRETER = """#pragma once
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
namespace tflite {
class Model { public: uint32_t version() const; };
class MicroInterpreter {
 public:
  MicroInterpreter(const Model* model, const MicroOpResolver& resolver, uint8_t* arena,
                   size_t arena_size);
  TfLiteStatus AllocateTensors();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  size_t arena_used_bytes() const;
};
}  // namespace tflite
"""

_SCHEMA = """#pragma once
#include "tensorflow/lite/micro/micro_interpreter.h"
#define TFLITE_SCHEMA_VERSION (3)
namespace tflite { const Model* GetModel(const void* buf); }
"""


def write_shim(root: Path, op_set: str) -> Path:
    """Declarations of the API of one TFLM source version (an op set of tflm_ops.json)."""
    tables = op_tables()
    t = tables["op_sets"][op_set]
    methods = [m for op, m in tables["builtin_methods"].items() if op not in t["missing_builtins"]]
    methods += [tables["custom_methods"][c] for c in t["custom_ops"]]
    decls = "\n".join(f"  TfLiteStatus {m}();" for m in methods)
    files = {
        "tensorflow/lite/c/common.h": _COMMON,
        "tensorflow/lite/micro/micro_log.h":
            "#pragma once\nvoid MicroPrintf(const char* format, ...);\n",
        "tensorflow/lite/micro/micro_mutable_op_resolver.h":
            '#pragma once\n#include "tensorflow/lite/c/common.h"\nnamespace tflite {\n'
            "class MicroOpResolver {};\ntemplate <unsigned int tOpCount>\n"
            f"class MicroMutableOpResolver : public MicroOpResolver {{\n public:\n{decls}\n}};\n}}\n",
        "tensorflow/lite/micro/micro_interpreter.h": _INTERPRETER,
        "tensorflow/lite/schema/schema_generated.h": _SCHEMA,
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


_FAKE_INTERPRETER = """// A stand-in for TFLM's interpreter: Invoke() gives, for each golden input, the
// output TFLM computed for it (the real interpreter runs in `firmware --check`).
#include <string.h>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "%(name)s_golden.h"
#include "%(name)s_model_settings.h"
#include "%(name)s_op_resolver.h"
static const int8_t kTflmOutputs[%(macro)s_GOLDEN_COUNT][%(macro)s_OUTPUT_BYTES] = {%(outputs)s};
alignas(16) static uint8_t in_buf[%(macro)s_INPUT_BYTES], out_buf[%(macro)s_OUTPUT_BYTES];
static TfLiteTensor in_t, out_t;
namespace tflite {
uint32_t Model::version() const { return TFLITE_SCHEMA_VERSION; }
const Model* GetModel(const void* buf) { return static_cast<const Model*>(buf); }
MicroInterpreter::MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t*, size_t) {}
TfLiteStatus MicroInterpreter::AllocateTensors() {
#ifdef FAIL_ALLOCATION
  return kTfLiteError;
#endif
  in_t.data.raw = in_buf;
  out_t.data.raw = out_buf;
  return kTfLiteOk;
}
TfLiteStatus MicroInterpreter::Invoke() {
  for (int v = 0; v < %(macro)s_GOLDEN_COUNT; ++v) {
    if (memcmp(in_buf, %(name)s_golden_inputs[v], %(macro)s_INPUT_BYTES) == 0) {
      memcpy(out_buf, kTflmOutputs[v], %(macro)s_OUTPUT_BYTES);
      return kTfLiteOk;
    }
  }
  return kTfLiteError;
}
TfLiteTensor* MicroInterpreter::input(size_t) { return &in_t; }
TfLiteTensor* MicroInterpreter::output(size_t) { return &out_t; }
size_t MicroInterpreter::arena_used_bytes() const { return 4321; }
%(methods)s
template class MicroMutableOpResolver<k%(camel)sOpCount>;
}  // namespace tflite
void MicroPrintf(const char*, ...) {}
"""


def write_fake_interpreter(path: Path, shim: Path, name: str, outputs) -> Path:
    """A fake TFLM (see _FAKE_INTERPRETER) for model ``name`` of a generated project,
    answering its golden inputs with ``outputs`` (all vectors' int8 outputs, flattened);
    every resolver method of the ``shim`` declarations returns kTfLiteOk."""
    from tflm_pipeline.codegen.c_literals import camel_case

    methods = re.findall(r"TfLiteStatus (\w+)\(\);", (
        shim / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text())
    path.write_text(_FAKE_INTERPRETER % {
        "name": name, "macro": name.upper(), "camel": camel_case(name),
        "outputs": ", ".join(str(int(v)) for v in outputs),
        "methods": "\n".join(f"template <unsigned int N> TfLiteStatus "
                             f"MicroMutableOpResolver<N>::{m}() {{ return kTfLiteOk; }}"
                             for m in methods)})
    return path


def self_test_kit(code: Path, name: str, target: str, tmp: Path) -> tuple[Path, Path, Path]:
    """What a generated project's boot self-test needs to run off-target without a TFLM
    tree: the declarations of the target's TFLM (``shim``), the check main, and a fake
    interpreter answering the golden inputs with the outputs in ``<name>_golden.h``."""
    shim = write_shim(tmp / "shim", get_release(get_target(target).releases[0]).op_set)
    golden = (code / f"{name}_golden.h").read_text()
    outputs = bytes(int(h, 16) for h in re.findall(
        r"0x([0-9a-f]{2})", golden.split(f"{name}_golden_outputs")[1].split("};")[0]))
    fake = write_fake_interpreter(tmp / "fake_tflm.cc", shim, name,
                                  np.frombuffer(outputs, np.int8))
    main = tmp / "check_main.cc"
    main.write_text(render("check/check_main.cc.j2", name=name))
    return shim, main, fake


def host_self_test(code: Path, name: str, kit: tuple[Path, Path, Path], tmp: Path, *,
                   replace: dict[str, str] | None = None, c_sources: tuple[str, ...] = (),
                   std: str = "c++11") -> subprocess.CompletedProcess:
    """Build a generated project's boot self-test for this host against ``kit``
    (:func:`self_test_kit`) and run it: a copy of ``code`` with the files in ``replace``
    (name -> text) swapped in, plus the project's C sources ``c_sources``."""
    shim, main, fake = kit
    work = tmp / "code"
    work.mkdir(exist_ok=True)
    for f in code.iterdir():
        if f.is_file():
            (work / f.name).write_bytes(f.read_bytes())
    for file_name, text in (replace or {}).items():
        (work / file_name).write_text(text)
    objects = []
    for c in c_sources:
        obj = tmp / (c + ".o")
        subprocess.run(["gcc", "-O2", "-c", "-I", str(work), str(work / c), "-o", str(obj)],
                       check=True)
        objects.append(str(obj))
    exe = tmp / "self_test"
    subprocess.run(["g++", f"-std={std}", "-O2", "-DTFLMP_CHECK", "-I", str(work), "-I",
                    str(shim), str(main), str(work / f"{name}_runner.cc"),
                    str(work / f"{name}_model_data.cc"), str(fake), *objects, "-o", str(exe)],
                   check=True)
    return subprocess.run([str(exe)], capture_output=True, text=True)
