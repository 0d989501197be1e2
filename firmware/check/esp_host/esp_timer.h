/* Host stand-in for ESP-IDF's esp_timer.h, so esp-tflite-micro's ESP-NN kernel
 * wrappers compile for the host (tflmp verify --target, kernels esp-nn): they only
 * read the clock for their optional per-op timing, which never changes an output. */
#pragma once
#include <stdint.h>

static inline int64_t esp_timer_get_time(void) { return 0; }
