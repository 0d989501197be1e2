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

/* A microsecond clock for the self-test's latency (semihosting's clock() counts in
 * 10 ms steps, so a fast model read "0 us"): SysTick on the 25 MHz processor clock of
 * mps2-an386, counting down from 2^24 - 1, its wraps counted in its exception.  It
 * measures QEMU's time, not a device's. */
#define SYST_CSR (*(volatile uint32_t*)0xE000E010)
#define SYST_RVR (*(volatile uint32_t*)0xE000E014)
#define SYST_CVR (*(volatile uint32_t*)0xE000E018)
#define CPU_MHZ 25u
static volatile uint32_t systick_wraps;
void SysTick_Handler(void) { ++systick_wraps; }
#define ICSR (*(volatile uint32_t*)0xE000ED04)
#define ICSR_PENDSTSET (1u << 26) /* the SysTick exception is pending */
uint32_t tflmp_clock_us(void) {
  uint32_t wraps, count, pending;
  do {
    wraps = systick_wraps;
    count = SYST_CVR;
    pending = (ICSR & ICSR_PENDSTSET) ? 1u : 0u; /* wrapped, its exception not run yet */
    if (pending) count = SYST_CVR;               /* the count after that wrap */
  } while (wraps != systick_wraps);              /* the exception ran meanwhile */
  const uint64_t ticks = ((uint64_t)(wraps + pending) << 24) + (0xFFFFFFu - count);
  return (uint32_t)(ticks / CPU_MHZ);
}

__attribute__((noreturn)) void Reset_Handler(void) {
  *(volatile uint32_t*)0xE000ED88 |= (0xFu << 20); /* FPU on before any FP instruction */
  __asm__ volatile("dsb\n isb");
  memset(&__bss_start__, 0, (uint32_t)&__bss_end__ - (uint32_t)&__bss_start__);
  SYST_RVR = 0xFFFFFFu;
  SYST_CVR = 0;
  SYST_CSR = 7u; /* enable, exception on wrap, processor clock */
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
    HardFault_Handler, HardFault_Handler, 0, 0, 0, 0, D, D, 0, D, SysTick_Handler,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D,
    D, D, D, D, D, D, D, D, D, D, D, D, D, D, D, D};
