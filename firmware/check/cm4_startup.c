/* cm4_startup.c: bare-metal start-up for `tflmp firmware --check` under QEMU's mps2-an386
 * machine (Cortex-M4F).  Output and exit code travel over semihosting (newlib rdimon).
 * Link with: --specs=rdimon.specs -nostartfiles -T mps2_an386.ld
 * Not part of any board project. */
#include <stdint.h>
#include <string.h>

extern uint32_t __bss_start__, __bss_end__, __stack_top;
extern int main(void);
extern void initialise_monitor_handles(void);
extern void __libc_init_array(void);
extern void exit(int);

void _init(void) {} /* crti/crtn are not linked with -nostartfiles */
void _fini(void) {}
void* __dso_handle = 0; /* __cxa_atexit needs it for static C++ objects */

/* SYS_EXIT_EXTENDED: leave QEMU with `code`, usable from fault handlers. */
static void semihost_exit(int code) {
  volatile uint32_t block[2] = {0x20026 /* ADP_Stopped_ApplicationExit */, (uint32_t)code};
  register uint32_t r0 __asm__("r0") = 0x20;
  register uint32_t r1 __asm__("r1") = (uint32_t)block;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  for (;;) {
  }
}

void Default_Handler(void) { semihost_exit(120); }
void HardFault_Handler(void) { semihost_exit(121); }

__attribute__((noreturn)) void Reset_Handler(void) {
  *(volatile uint32_t*)0xE000ED88 |= (0xFu << 20); /* FPU on before any FP instruction */
  __asm__ volatile("dsb\n isb");
  memset(&__bss_start__, 0, (uint32_t)&__bss_end__ - (uint32_t)&__bss_start__);
  initialise_monitor_handles();
  __libc_init_array();
  exit(main());
  for (;;) {
  }
}

typedef void (*vector_t)(void);
#define D Default_Handler
__attribute__((section(".vectors"), used)) const vector_t vector_table[16 + 32] = {
    (vector_t)&__stack_top, Reset_Handler, D, HardFault_Handler, HardFault_Handler,
    HardFault_Handler, HardFault_Handler, 0, 0, 0, 0, D, D, 0, D, D,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D};
