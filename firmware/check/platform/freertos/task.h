// Declarations of the FreeRTOS task API the generated ESP-IDF projects use (compile check only).
#pragma once
#include "freertos/FreeRTOS.h"
#ifdef __cplusplus
extern "C" {
#endif
void vTaskDelay(TickType_t ticks);
#ifdef __cplusplus
}
#endif
