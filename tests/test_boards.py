"""tflmp profile: memory plan beside TFLM's arena, flash, latency bands, board fit."""

import json

import pytest

from conftest import run_cli, shared
from tflm_pipeline.mcu import boards, latency
from tflm_pipeline.tflite import layers
from tflm_pipeline.tflite.model_info import read_model

PERSON = "person_detect.tflite"


@pytest.fixture(scope="module")
def person_profile(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile") / "p.json"
    p = run_cli("profile", shared("models", PERSON), "--board", "arduino-nano33ble",
                "--out", out)
    assert p.returncode == 0, p.stderr
    return json.loads(out.read_text()), p.stdout


def test_memory_plan_bounds_the_arena(person_profile):
    p, stdout = person_profile
    m = p["memory"]
    assert 0 < m["lower_bound_bytes"] <= m["planned_bytes"] <= m["arena_32bit_bytes"]
    assert m["gap_bytes"] == m["arena_32bit_bytes"] - m["lower_bound_bytes"]
    # the tensors alive at the peak are what the lower bound adds up
    assert sum(b["bytes"] for b in m["live_at_peak"]) == m["lower_bound_bytes"]
    # the 64-bit host interpreter needs more than the 32-bit MCU build (wider pointers)
    assert m["arena_host_bytes"] > m["arena_32bit_bytes"]
    assert p["totals"]["macs"] == sum(r["macs"] for r in p["layers"])
    assert "lower bound" in stdout and "memory plan: peak at" in stdout


def test_flash_counts_code_for_exactly_the_ops_used(person_profile):
    p, _ = person_profile
    info = read_model(shared("models", PERSON))
    code, basis = boards.kernel_code_bytes(info.op_names, "cortex-m4/cmsis-nn")
    assert p["flash"]["code_bytes"] == code and "core" in basis
    fewer, _ = boards.kernel_code_bytes(info.op_names[:1], "cortex-m4/cmsis-nn")
    assert fewer < code
    b = p["board"]
    assert b["fits"] and b["flash"] == {"model": info.size, "TFLM code": code,
                                        "framework": boards.get_board(
                                            "arduino-nano33ble").reserved_flash_bytes}


def test_latency_band_follows_macs_and_clock(person_profile):
    p, _ = person_profile
    board = boards.get_board("arduino-nano33ble")
    rows = layers.layers(read_model(shared("models", PERSON)))
    macs = sum(r.macs for r in rows)
    band = latency.latency_band(rows, board)
    lo, hi = board.kernels.cycles_per_mac
    assert macs * lo / 64e3 <= band.low_ms < band.high_ms
    assert band.high_ms <= 1.2 * macs * hi / 64e3
    assert p["board"]["latency"]["low_ms"] == pytest.approx(band.low_ms)
    # a measurement of this model narrows the band to +-10 % around it
    narrow = latency.latency_band(rows, board, latency.Measurement(us=500_000))
    assert narrow.low_ms == pytest.approx(450) and narrow.high_ms == pytest.approx(550)
    assert "4.47 cycles/MAC" in narrow.basis and "outside" not in narrow.basis
    # 1 s is 8.9 cycles/MAC: reference kernels, not the CMSIS-NN the board's class says
    assert "outside" in latency.latency_band(rows, board, latency.Measurement(us=1e6)).basis
    # measured on another model: scaled by MACs, with a wider band
    other = latency.latency_band(rows, board, latency.Measurement(us=50_000, macs=macs // 10))
    assert other.low_ms == pytest.approx(350, rel=1e-4) and other.high_ms == pytest.approx(650, rel=1e-4)
    # every board in the database gets a band and a verdict
    assert {r["board"] for r in p["boards"]} == set(boards.boards())


def test_too_small_board_fails_with_the_numbers(tmp_path):
    user = tmp_path / "boards.yaml"
    user.write_text("boards:\n  tiny:\n    title: a 64 KB part\n    mcu: x\n    core: cortex-m4\n"
                    "    clock_mhz: 48\n    ram_bytes: 65536\n    flash_bytes: 262144\n"
                    "    reserved_ram_bytes: 4096\n    reserved_flash_bytes: 16384\n"
                    "    stack_bytes: 4096\n    kernels: cortex-m4/reference\n"
                    "    tflm_release: tflm-2026\n    targets: []\n")
    p = run_cli("profile", shared("models", PERSON), "--board", "tiny", "--boards-file", user)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "does not fit tiny" in err[0] and "RAM needs" in err[0]
    assert "flash needs" in err[0] and "Traceback" not in p.stderr


def test_arena_goes_to_psram_when_internal_ram_is_short():
    info = read_model(shared("models", PERSON))
    board = boards.get_board("esp32-s3-psram")
    fit = boards.board_fit(info, board, arena_bytes=600_000, model_bytes=info.size,
                           code_bytes=100_000)
    assert fit.fits and fit.psram == {"arena": 600_000} and fit.ram["arena"] == 0
    no_psram = boards.board_fit(info, boards.get_board("esp32-s3"), arena_bytes=600_000,
                                model_bytes=info.size, code_bytes=100_000)
    assert not no_psram.fits and "RAM needs" in no_psram.message


def test_largest_heap_block_limits_the_esp32_arena():
    info = read_model(shared("models", PERSON))
    board = boards.get_board("esp32")
    fit = boards.board_fit(info, board, arena_bytes=board.largest_block_bytes + 16,
                           model_bytes=info.size, code_bytes=100_000)
    assert not fit.fits and "largest heap block" in fit.message


@pytest.mark.parametrize("text, problem", [
    ("boards:\n  arduino-nano33ble:\n    clock: 64\n", "unknown field 'clock'"),
    ("boards:\n  arduino-nano33ble:\n    ram_bytes: -1\n", "ram_bytes must be"),
    ("kernels:\n  k:\n    title: t\n", "lacks"),
    ("boards: [", "not valid YAML"),
])
def test_bad_boards_file_is_one_clear_error(tmp_path, text, problem):
    user = tmp_path / "b.yaml"
    user.write_text(text)
    p = run_cli("profile", shared("models", "hello_world_int8.tflite"), "--boards-file", user)
    assert p.returncode == 2 and problem in p.stderr and "Traceback" not in p.stderr


def test_every_no_in_the_fit_table_says_why_with_the_arena_it_counts(tmp_path):
    # RAM and flash both inside the limits, the arena larger than the heap's largest block
    user = tmp_path / "boards.yaml"
    user.write_text("boards:\n  split-heap:\n    title: a heap in regions\n    mcu: x\n"
                    "    core: cortex-m4\n    clock_mhz: 48\n    ram_bytes: 1048576\n"
                    "    flash_bytes: 4194304\n    reserved_ram_bytes: 4096\n"
                    "    reserved_flash_bytes: 16384\n    largest_block_bytes: 50000\n"
                    "    stack_bytes: 4096\n    kernels: cortex-m4/reference\n"
                    "    tflm_release: tflm-2026\n    targets: []\n")
    p = run_cli("profile", shared("models", PERSON), "--boards-file", user, "--out",
                tmp_path / "p.json")
    assert p.returncode == 0, p.stderr
    rows = {r["board"]: r for r in json.loads((tmp_path / "p.json").read_text())["boards"]}
    arena = rows["split-heap"]["arena_bytes"]
    assert rows["split-heap"]["reasons"] == [f"arena {arena:,} B > largest heap block 50,000 B"]
    assert all(r["reasons"] == [] for r in rows.values() if r["fits"])
    row = next(line for line in p.stdout.splitlines() if line.startswith("split-heap"))
    assert " NO " in row and f"{arena:,}" in row and "largest heap block 50,000 B" in row


def test_counted_instructions_give_the_calibrated_band(tmp_path):
    # QEMU -icount's Cortex-M4 instructions x the CMSIS-NN kernels' calibrated cycles per
    # instruction (firmware/boards.yaml, bench/latency_calibration.py) at the board's clock
    nano = boards.get_board("arduino-nano33ble")
    lo, hi = nano.kernels.instruction_factor("conv-dense").band  # no layers: no depthwise
    band = latency.latency_band([], nano, latency.Measurement(instructions=31_926_000))
    assert band.low_ms == pytest.approx(31_926_000 * lo / 64e3)
    assert band.high_ms == pytest.approx(31_926_000 * hi / 64e3)
    assert "QEMU -icount" in band.basis and "calibrated on MLPerf Tiny" in band.basis
    model = shared("models", "person_detect.tflite")
    p = run_cli("profile", model, "--board", "esp32", "--measured-instructions", "1000")
    assert p.returncode == 2 and "no calibrated cycles per instruction" in p.stderr
    p = run_cli("profile", model, "--measured-instructions", "1000")
    assert p.returncode == 2 and "--measured-instructions needs --board" in p.stderr
