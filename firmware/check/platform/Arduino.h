// Declarations of the Arduino core API the generated sketches use, so that
// `tflmp firmware --check` compiles a project's main on any host (never linked).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

unsigned long millis();
unsigned long micros();
void delay(unsigned long ms);

class TflmpCheckSerial {
 public:
  void begin(unsigned long baud);
  size_t println(const char* line);
  size_t printf(const char* format, ...) __attribute__((format(printf, 2, 3)));
  explicit operator bool() const;
};
extern TflmpCheckSerial Serial;
