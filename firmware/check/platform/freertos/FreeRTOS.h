// Declarations of the FreeRTOS API the generated ESP-IDF projects use (compile check only).
#pragma once
#include <stdint.h>
typedef uint32_t TickType_t;
#define pdMS_TO_TICKS(ms) ((TickType_t)(ms))
