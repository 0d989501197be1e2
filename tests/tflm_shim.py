"""Declarations of the TFLM C++ API the generated code uses, per TFLM source version.

CI has no TFLM source (it is never committed here), so generated sources are compiled
against these declarations: real compilers, real type checking of every call and of
every resolver method against the methods that version declares (firmware/tflm_ops.json).
Linking and running against a real tree is `tflmp firmware --check --tflm-dir`.
"""

from pathlib import Path

from tflm_pipeline.mcu.releases import op_tables

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
