// Declarations of the ESP_I2S library API of arduino-esp32 3.x the generated sketches use,
// so that `tflmp firmware --check` compiles TFLMP_USE_MIC=1 (never linked).
#pragma once
#include <stddef.h>
#include <stdint.h>
typedef enum { I2S_MODE_STD } i2s_mode_t;
typedef enum { I2S_DATA_BIT_WIDTH_16BIT = 16, I2S_DATA_BIT_WIDTH_32BIT = 32 } i2s_data_bit_width_t;
typedef enum { I2S_SLOT_MODE_MONO = 1, I2S_SLOT_MODE_STEREO = 2 } i2s_slot_mode_t;
class I2SClass {
 public:
  bool setPins(int8_t bclk, int8_t ws, int8_t dout, int8_t din = -1, int8_t mclk = -1);
  bool begin(i2s_mode_t mode, uint32_t rate, i2s_data_bit_width_t bits, i2s_slot_mode_t ch,
             int8_t slot_mask = -1);
  size_t readBytes(char* buffer, size_t length);
};
