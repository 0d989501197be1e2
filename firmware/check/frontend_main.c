/* frontend_main.c: runs a generated project's audio front end over the clips in
 * frontend_in.bin (int32 clips, int32 samples per clip, then int16 samples) and writes
 * frontend_out.bin (int32 frames, int32 values per frame, then the int16 features),
 * on the host or on a Cortex-M4 under QEMU (files over semihosting).  With
 * -DFRONTEND_INPUTS (a project whose header has <name>_feature_to_input) it also writes
 * the int8 model inputs of those features (frontend_inputs.bin) and the input of every
 * int16 feature from -32768 to 32767 (frontend_levels.bin).  tflmp's check of device
 * features against training features; not part of any board project.
 * Compile with -DFRONTEND_NAME=<model identifier> and -DFRONTEND_HEADER="<name>_audio_frontend.h". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include FRONTEND_HEADER

#define CONCAT_(a, b) a##b
#define CONCAT(a, b) CONCAT_(a, b)
#define CONFIG CONCAT(FRONTEND_NAME, _audio_frontend)
#define TO_INPUT CONCAT(FRONTEND_NAME, _feature_to_input)

static int fail(const char* what) {
  printf("frontend FAIL %s\n", what);
  return 1;
}

int main(void) {
  static int32_t work[2 * 4096];
  static int64_t mel[2048];
  int32_t header[2], shape[2], clip, i;
  int16_t *pcm, *features;
  FILE *in, *out, *inputs = NULL;
  if (CONFIG.fft_length > 4096 || CONFIG.num_mel_bins > 2048) return fail("scratch too small");
  in = fopen("frontend_in.bin", "rb");
  out = fopen("frontend_out.bin", "wb");
  if (in == NULL || out == NULL) return fail("cannot open frontend_in.bin / frontend_out.bin");
  if (fread(header, sizeof(int32_t), 2, in) != 2) return fail("short header");
  shape[0] = tflmp_audio_frontend_frames(&CONFIG, header[1]);
  shape[1] = tflmp_audio_frontend_outputs(&CONFIG);
  pcm = (int16_t*)malloc((size_t)header[1] * sizeof(int16_t));
  features = (int16_t*)malloc((size_t)(shape[0] * shape[1]) * sizeof(int16_t));
  if (pcm == NULL || features == NULL) return fail("out of memory");
  fwrite(shape, sizeof(int32_t), 2, out);
#ifdef FRONTEND_INPUTS
  inputs = fopen("frontend_inputs.bin", "wb");
  if (inputs == NULL) return fail("cannot open frontend_inputs.bin");
#endif
  for (clip = 0; clip < header[0]; ++clip) {
    if (fread(pcm, sizeof(int16_t), (size_t)header[1], in) != (size_t)header[1])
      return fail("short clip");
    tflmp_audio_frontend_clip(&CONFIG, pcm, header[1], features, work, mel);
    fwrite(features, sizeof(int16_t), (size_t)(shape[0] * shape[1]), out);
#ifdef FRONTEND_INPUTS
    for (i = 0; i < shape[0] * shape[1]; ++i) {
      const int8_t value = TO_INPUT(features[i]);
      fwrite(&value, 1, 1, inputs);
    }
#endif
  }
  fclose(in);
  fclose(out);
#ifdef FRONTEND_INPUTS
  fclose(inputs);
  inputs = fopen("frontend_levels.bin", "wb");
  if (inputs == NULL) return fail("cannot open frontend_levels.bin");
  for (i = -32768; i <= 32767; ++i) {
    const int8_t value = TO_INPUT((int16_t)i);
    fwrite(&value, 1, 1, inputs);
  }
  fclose(inputs);
#endif
  (void)inputs;
  (void)i;
  printf("frontend PASS %ld clips x %ld frames x %ld values\n", (long)header[0], (long)shape[0],
         (long)shape[1]);
  return 0;
}
