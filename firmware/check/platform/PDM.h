// Declarations of the PDM library API of the Arduino mbed core (Nano 33 BLE Sense
// microphone) the generated sketches use, so that `tflmp firmware --check` compiles
// TFLMP_USE_MIC=1 (never linked).
#pragma once
#include <stddef.h>
class PDMClass {
 public:
  int begin(int channels, int sampleRate);
  void onReceive(void (*function)(void));
  int available();
  int read(void* buffer, size_t size);
};
extern PDMClass PDM;
