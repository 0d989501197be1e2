/* tflmp_audio_frontend.h: log-mel and MFCC features of 16-bit PCM audio, in integer
 * arithmetic only.
 *
 * The same source computes the features tflmp trains on (built for the host and called
 * from Python) and the features the device feeds its model (copied into every audio
 * firmware project).  It has no floating point, no libm and no undefined behaviour, so
 * every C99 compiler on every target gives the same bits whatever its flags (-O level,
 * FMA contraction, -ffast-math).  It assumes only that >> of a negative integer shifts
 * arithmetically, as GCC, Clang, IAR and Arm Compiler all do.
 *
 * The tables (window, FFT twiddles, mel filters, DCT) are constants tflmp computes from
 * the run's feature parameters: <model>_audio_frontend.c in a generated project.
 * Not thread-safe per scratch buffer; otherwise stateless. */
#ifndef TFLMP_AUDIO_FRONTEND_H_
#define TFLMP_AUDIO_FRONTEND_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int32_t frame_length;  /* samples per frame */
  int32_t frame_step;    /* samples between frame starts */
  int32_t fft_length;    /* a power of two >= frame_length */
  int32_t fft_log2;      /* log2(fft_length) */
  int32_t num_mel_bins;  /* <= fft_length / 2 */
  int32_t num_mfcc;      /* MFCCs per frame; 0 gives the log-mel bands instead */
  int32_t output_frac_bits; /* outputs are int16 with this many fraction bits */
  int64_t log_offset;    /* added to every mel energy, in mel units (2^mel_frac_bits = 1.0) */
  const uint16_t* window;     /* [frame_length] Hann window, Q15 (32768 = 1.0) */
  const int32_t* twiddles;    /* [fft_length / 2][2] cos, sin of 2 pi k / fft_length, Q30 */
  const int16_t* mel_segment; /* [fft_length / 2 + 1] mel segment of each FFT bin, -1: none */
  const uint16_t* mel_rise;   /* [fft_length / 2 + 1] weight in the segment's upper band, Q15 */
  const int32_t* dct;         /* [num_mel_bins][num_mfcc] DCT-II basis, Q30 (NULL: log-mel) */
} tflmp_audio_frontend_config;

/* Outputs per frame: num_mfcc, or num_mel_bins for log-mel. */
int32_t tflmp_audio_frontend_outputs(const tflmp_audio_frontend_config* config);

/* Frames in a clip of `num_samples` (0 when shorter than one frame). */
int32_t tflmp_audio_frontend_frames(const tflmp_audio_frontend_config* config,
                                    int32_t num_samples);

/* Features of one frame of `frame_length` samples into `out` (outputs() values).
 * `work` holds 2 * fft_length words and `mel` num_mel_bins; both are scratch. */
void tflmp_audio_frontend_frame(const tflmp_audio_frontend_config* config,
                                const int16_t* frame, int16_t* out, int32_t* work,
                                int64_t* mel);

/* Features of every frame of a clip, frame after frame into `out`
 * (frames() * outputs() values).  Returns the number of frames. */
int32_t tflmp_audio_frontend_clip(const tflmp_audio_frontend_config* config,
                                  const int16_t* samples, int32_t num_samples, int16_t* out,
                                  int32_t* work, int64_t* mel);

/* How many of the ascending `thresholds` are <= q: an int16 feature's step above the
 * lowest model input level (<model>_feature_to_input() in <model>_audio_frontend.h). */
int32_t tflmp_audio_frontend_level(const int16_t* thresholds, int32_t count, int16_t q);

#ifdef __cplusplus
}
#endif

#endif /* TFLMP_AUDIO_FRONTEND_H_ */
