/* raw_input_main.c: runs a generated project's raw-input code (<name>_input_from_raw and
 * <name>_input_quantize of <name>_model_settings.h, the functions Classify() uses) over the
 * samples in raw_in.bin (int32 samples, int32 values per sample, then float32 values) and
 * writes raw_out.bin: for every value, input_from_raw(value, its index in the sample) and
 * input_quantize(value), as int8.  On the host or on a Cortex-M4 under QEMU (files over
 * semihosting).  tflmp's check of device inputs against training's; not part of any board
 * project.  Compile with -DRAW_NAME=<model identifier> and
 * -DRAW_HEADER="<name>_model_settings.h". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include RAW_HEADER

#define CONCAT_(a, b) a##b
#define CONCAT(a, b) CONCAT_(a, b)
#define FROM_RAW CONCAT(RAW_NAME, _input_from_raw)
#define QUANTIZE CONCAT(RAW_NAME, _input_quantize)

static int fail(const char* what) {
  printf("raw-input FAIL %s\n", what);
  return 1;
}

int main(void) {
  int32_t header[2], sample, i;
  float* raw;
  int8_t* out;
  FILE *in, *result;
  in = fopen("raw_in.bin", "rb");
  result = fopen("raw_out.bin", "wb");
  if (in == NULL || result == NULL) return fail("cannot open raw_in.bin / raw_out.bin");
  if (fread(header, sizeof(int32_t), 2, in) != 2) return fail("short header");
  raw = (float*)malloc((size_t)header[1] * sizeof(float));
  out = (int8_t*)malloc((size_t)header[1] * 2);
  if (raw == NULL || out == NULL) return fail("out of memory");
  for (sample = 0; sample < header[0]; ++sample) {
    if (fread(raw, sizeof(float), (size_t)header[1], in) != (size_t)header[1])
      return fail("short sample");
    for (i = 0; i < header[1]; ++i) {
      out[i] = FROM_RAW(raw[i], (int)i);
      out[header[1] + i] = QUANTIZE(raw[i]);
    }
    fwrite(out, 1, (size_t)header[1] * 2, result);
  }
  fclose(in);
  fclose(result);
  printf("raw-input PASS %ld samples x %ld values\n", (long)header[0], (long)header[1]);
  return 0;
}
