/* tflmp_audio_frontend.c: log-mel and MFCC features in integer arithmetic; see the header.
 *
 * Per frame:  x = sample * 2^headroom * window (Q15 x Q15; headroom lifts quiet frames to
 * full scale, shifted down by log2(fft_length) so no sum of the FFT can overflow 31 bits) -> radix-2 FFT with Q30 twiddles -> magnitude (integer
 * square root, rounded) -> triangular mel filters (Q15) summed in 64 bits ->
 * ln(mel + log_offset) in Q20 (bit-by-bit log2 times ln 2) -> for MFCC the DCT-II (Q30)
 * -> rounded to int16 with output_frac_bits fraction bits, saturated. */
#include "tflmp_audio_frontend.h"

#define LOG_FRAC_BITS 20            /* log-mel values inside: Q20 */
#define LN2_Q30 INT64_C(744261118)  /* ln(2) * 2^30, rounded */

static int64_t round_shift(int64_t value, int shift) {
  return shift > 0 ? (value + ((int64_t)1 << (shift - 1))) >> shift : value;
}

static int16_t saturate16(int64_t value) {
  if (value > INT16_MAX) return INT16_MAX;
  if (value < INT16_MIN) return INT16_MIN;
  return (int16_t)value;
}

/* sqrt(v) rounded to the nearest integer. */
static uint32_t sqrt_round(uint64_t v) {
  uint64_t root = 0, bit = UINT64_C(1) << 62;
  while (bit > v) bit >>= 2;
  while (bit != 0) {
    if (v >= root + bit) {
      v -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return (uint32_t)(v > root ? root + 1 : root);
}

/* log2(v) in Q20 for v >= 1: the exponent, then one fraction bit per squaring of the
 * mantissa (held in Q30, [1, 2)). */
static int64_t log2_q20(uint64_t v) {
  int exponent = 0;
  uint64_t t = v, mantissa;
  int64_t result;
  int bit;
  while (t >= 2) {
    t >>= 1;
    ++exponent;
  }
  mantissa = exponent >= 30 ? v >> (exponent - 30) : v << (30 - exponent);
  result = (int64_t)exponent << LOG_FRAC_BITS;
  for (bit = LOG_FRAC_BITS - 1; bit >= 0; --bit) {
    mantissa = (mantissa * mantissa + (UINT64_C(1) << 29)) >> 30;
    if (mantissa >= (UINT64_C(1) << 31)) {
      mantissa >>= 1;
      result |= (int64_t)1 << bit;
    }
  }
  return result;
}

/* In-place radix-2 decimation-in-time FFT of re/im (fft_length points). */
static void fft(const tflmp_audio_frontend_config* c, int32_t* re, int32_t* im) {
  const int32_t n = c->fft_length;
  int32_t i, j, size;
  for (i = 0, j = 0; i < n; ++i) { /* bit-reversed order */
    int32_t bit;
    if (i < j) {
      int32_t t = re[i];
      re[i] = re[j];
      re[j] = t;
      t = im[i];
      im[i] = im[j];
      im[j] = t;
    }
    for (bit = n >> 1; bit > 0 && (j & bit); bit >>= 1) j ^= bit;
    j |= bit;
  }
  for (size = 2; size <= n; size <<= 1) {
    const int32_t half = size >> 1, stride = n / size;
    int32_t start, k;
    for (start = 0; start < n; start += size) {
      for (k = 0; k < half; ++k) {
        const int64_t cos_q30 = c->twiddles[2 * k * stride];
        const int64_t sin_q30 = c->twiddles[2 * k * stride + 1];
        const int32_t a = start + k, b = a + half;
        /* (re + i im) * (cos - i sin): e^{-2 pi i k / size} */
        const int32_t tr = (int32_t)round_shift(re[b] * cos_q30 + im[b] * sin_q30, 30);
        const int32_t ti = (int32_t)round_shift(im[b] * cos_q30 - re[b] * sin_q30, 30);
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
      }
    }
  }
}

int32_t tflmp_audio_frontend_outputs(const tflmp_audio_frontend_config* c) {
  return c->num_mfcc > 0 ? c->num_mfcc : c->num_mel_bins;
}

int32_t tflmp_audio_frontend_frames(const tflmp_audio_frontend_config* c, int32_t num_samples) {
  return num_samples < c->frame_length ? 0 : 1 + (num_samples - c->frame_length) / c->frame_step;
}

void tflmp_audio_frontend_frame(const tflmp_audio_frontend_config* c, const int16_t* frame,
                                int16_t* out, int32_t* work, int64_t* mel) {
  const int32_t n = c->fft_length, bins = n / 2 + 1, bands = c->num_mel_bins;
  const int mel_frac_bits = 45 - c->fft_log2; /* Q(30 - fft_log2) magnitude x Q15 weight */
  int32_t* re = work;
  int32_t* im = work + n;
  int32_t i, k, peak = 0, headroom = 0;
  for (i = 0; i < c->frame_length; ++i) {
    const int32_t magnitude = frame[i] < 0 ? -(int32_t)frame[i] : frame[i];
    if (magnitude > peak) peak = magnitude;
  }
  /* Block floating point: quiet frames are scaled up by 2^headroom (peak stays <= 2^15)
   * so they keep their precision; the log takes the scale out again. */
  while (peak != 0 && headroom < 15 && (peak << (headroom + 1)) <= 32768) ++headroom;
  for (i = 0; i < n; ++i) {
    re[i] = i < c->frame_length
                ? ((int32_t)frame[i] * (1 << headroom) * (int32_t)c->window[i]) >> c->fft_log2
                : 0;
    im[i] = 0;
  }
  fft(c, re, im);
  for (i = 0; i < bands; ++i) mel[i] = 0;
  for (i = 0; i < bins; ++i) {
    const int32_t segment = c->mel_segment[i];
    int64_t magnitude;
    if (segment < 0) continue;
    magnitude = sqrt_round((uint64_t)((int64_t)re[i] * re[i]) + (uint64_t)((int64_t)im[i] * im[i]));
    if (segment < bands) mel[segment] += magnitude * c->mel_rise[i];
    if (segment > 0) mel[segment - 1] += magnitude * (32768 - (int32_t)c->mel_rise[i]);
  }
  for (i = 0; i < bands; ++i) { /* ln(mel + offset), Q20, into re[] */
    const int64_t log2 = log2_q20((uint64_t)(mel[i] + (c->log_offset << headroom))) -
                         ((int64_t)(mel_frac_bits + headroom) << LOG_FRAC_BITS);
    re[i] = (int32_t)round_shift(log2 * LN2_Q30, 30);
  }
  if (c->num_mfcc <= 0) {
    for (i = 0; i < bands; ++i)
      out[i] = saturate16(round_shift(re[i], LOG_FRAC_BITS - c->output_frac_bits));
    return;
  }
  for (k = 0; k < c->num_mfcc; ++k) {
    int64_t sum = 0;
    for (i = 0; i < bands; ++i) sum += (int64_t)re[i] * c->dct[i * c->num_mfcc + k];
    out[k] = saturate16(round_shift(sum, LOG_FRAC_BITS + 30 - c->output_frac_bits));
  }
}

int32_t tflmp_audio_frontend_clip(const tflmp_audio_frontend_config* c, const int16_t* samples,
                                  int32_t num_samples, int16_t* out, int32_t* work,
                                  int64_t* mel) {
  const int32_t frames = tflmp_audio_frontend_frames(c, num_samples);
  const int32_t outputs = tflmp_audio_frontend_outputs(c);
  int32_t f;
  for (f = 0; f < frames; ++f)
    tflmp_audio_frontend_frame(c, samples + f * c->frame_step, out + f * outputs, work, mel);
  return frames;
}

int32_t tflmp_audio_frontend_level(const int16_t* thresholds, int32_t count, int16_t q) {
  int32_t low = 0, high = count; /* the first threshold > q lies in [low, high] */
  while (low < high) {
    const int32_t mid = low + (high - low) / 2;
    if (thresholds[mid] <= q) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return low;
}
