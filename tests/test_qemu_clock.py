"""The Cortex-M4 check's clock: QEMU with -icount counts instructions, so the self-test's
latency line is an instruction count (issue 17: it used to print "0 us" for small
models, from 10 ms semihosting ticks)."""

import subprocess
from pathlib import Path

import pytest

from conftest import require_tool
from tflm_pipeline.firmware_files import path as firmware_file
from tflm_pipeline.firmware_files import render
from tflm_pipeline.mcu.build_check import (CM4_FLAGS, COMMON_FLAGS, CXX_FLAGS,
                                           instructions_per_inference, op_instructions,
                                           qemu_command)

# A stand-in runner whose Begin() times a loop of a given length with the main's clock
# and prints it as the real runner prints its latency.
_TIMED_LOOP = r"""
#include <stdio.h>
#include "clk_runner.h"
namespace clk {
bool Begin(uint8_t*, size_t, PrintFn print, MicrosFn micros) {
  volatile uint32_t sink = 0;
  const uint32_t start = micros();
  for (uint32_t i = 0; i < LOOPS; ++i) sink = sink + i;
  const uint32_t us = micros() - start;
  char line[96];
  snprintf(line, sizeof(line), "clk: self-test PASS (1/1 vectors exact), %lu us per inference",
           (unsigned long)us);
  print(line);
  return true;
}
size_t ArenaUsedBytes() { return 16; }
}  // namespace clk
"""
_HEADER = """#pragma once
#include <stddef.h>
#include <stdint.h>
namespace clk {
constexpr size_t kArenaBytes = 16;
typedef void (*PrintFn)(const char* line);
typedef uint32_t (*MicrosFn)();
bool Begin(uint8_t* arena, size_t arena_bytes, PrintFn print, MicrosFn micros);
size_t ArenaUsedBytes();
}
"""


def _run(tmp_path, loops: int) -> str:
    (tmp_path / "clk_runner.h").write_text(_HEADER)
    (tmp_path / "runner.cc").write_text(_TIMED_LOOP)
    (tmp_path / "main.cc").write_text(render("check/check_main.cc.j2", name="clk"))
    elf = tmp_path / f"clk{loops}.elf"
    startup = tmp_path / "startup.o"
    subprocess.run(["arm-none-eabi-gcc", *CM4_FLAGS, "-O2", "-c",
                    str(firmware_file("check/cm4_startup.c")), "-o", str(startup)], check=True)
    flags = [*CM4_FLAGS, *COMMON_FLAGS, *CXX_FLAGS, f"-DLOOPS={loops}", "-I", str(tmp_path)]
    subprocess.run(["arm-none-eabi-g++", *flags, "--specs=rdimon.specs", "-nostartfiles", "-T",
                    str(firmware_file("check/mps2_an386.ld")), str(startup),
                    str(tmp_path / "main.cc"), str(tmp_path / "runner.cc"), "-o", str(elf)],
                   check=True)
    r = subprocess.run(qemu_command(elf), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_qemu_check_counts_instructions(tmp_path):
    for tool in ("arm-none-eabi-g++", "qemu-system-arm"):
        require_tool(tool)
    one = instructions_per_inference(_run(tmp_path, 1_000_000))
    again = instructions_per_inference(_run(tmp_path, 1_000_000))
    two = instructions_per_inference(_run(tmp_path, 2_000_000))
    assert one == again  # instruction counts, not host time: the same on every run
    # a volatile add loop is a handful of instructions per iteration
    assert 3_000_000 <= one <= 12_000_000, one
    assert two == pytest.approx(2 * one, rel=0.01)


def test_instruction_count_is_read_from_the_self_test_line():
    line = "lenet: self-test PASS (4/4 vectors exact), 1234 us per inference"
    assert instructions_per_inference(line) == 1_234_000
    assert instructions_per_inference("lenet: self-test FAIL (1/4 vectors differ, by up to 1 "
                                      "LSB), 7 us per inference") == 7000
    assert instructions_per_inference("no self-test line") is None


def test_per_op_instructions_are_read_from_the_profiler_csv():
    # TFLM's MicroProfiler::LogCsv() lines, as the Cortex-M4 check prints them (ticks of
    # the 25 MHz timer: 40 instructions each under -icount shift=0)
    output = "\n".join([
        "lenet: self-test PASS (4/4 vectors exact), 262 us per inference",
        "tflmp-profile: ticks per op of one inference (TFLM MicroProfiler)",
        '"Event","Tag","Ticks"', "0,CONV_2D,3120", "1,MAX_POOL_2D,214", "2,CONV_2D,2710",
        "3,FULLY_CONNECTED,301", "4,SOFTMAX,12",
        "tflmp-check: arena_bytes 9744 arena_used_bytes 9504"])
    ops = op_instructions(output)
    assert [o["op"] for o in ops] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "FULLY_CONNECTED",
                                      "SOFTMAX"]
    assert ops[0] == {"index": 0, "op": "CONV_2D", "instructions": 3120 * 40}
    assert op_instructions("lenet: self-test PASS (4/4 vectors exact), 1 us") is None


def test_recorded_cortex_m4_check_log():
    # the QEMU output of `tflmp firmware RUN --target esp-idf --check` for LeNet on digits
    # (esp-tflite-micro 1.4.0, reference kernels; recorded 2026-12-02): the per-op counts
    # add up to the self-test's count, to its 1,000-instruction resolution
    log = (Path(__file__).parent / "qemu" / "lenet_esp-tflite-micro-1.4.log").read_text()
    total = instructions_per_inference(log)
    ops = op_instructions(log)
    assert total == 1_375_000
    assert [o["op"] for o in ops] == ["CONV_2D", "AVERAGE_POOL_2D", "CONV_2D",
                                      "AVERAGE_POOL_2D", "CONV_2D", "RESHAPE",
                                      "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    assert abs(sum(o["instructions"] for o in ops) - total) < 1000
    assert max(ops, key=lambda o: o["instructions"])["index"] == 4  # the third conv
