"""report.md / report.html rendered from a real run, optional sections, run comparison,
and the HTML as headless Chromium renders it."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from conftest import require_tool
from tflm_pipeline.errors import TflmpError
from tflm_pipeline.tflite.model_info import read_model
from tflm_pipeline.tflite.layers import layers
from tflm_pipeline.reports.compare import compare_runs
from tflm_pipeline.reports.run_report import render_reports

PNG_URI = re.compile(r'<img\b[^>]*\bsrc="data:image/png;base64,([^"]+)"')
MD_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


class _Tables(HTMLParser):
    """The cell texts of every table in a page, keyed by the table's id."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._rows = self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._rows = self.tables.setdefault(dict(attrs).get("id") or f"#{len(self.tables)}",
                                                [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._rows[-1].append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def rendered(digits_run, tmp_path_factory):
    """The digits run copied and rendered, without its training-curves PNG beforehand."""
    run = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(digits_run[0], run)
    (run / "plots" / "training_curves.png").unlink()
    md, html = render_reports(run)
    assert (md, html) == (run / "report.md", run / "report.html")
    return run, md.read_text(), html.read_text(), json.loads((run / "report.json").read_text())


def test_train_writes_the_reports_with_profile_and_board_fit(digits_run):
    from tflm_pipeline.mcu.boards import boards

    run = digits_run[0]
    rep = json.loads((run / "report.json").read_text())
    memory = rep["profile"]["memory"]
    assert memory["lower_bound_bytes"] <= memory["planned_bytes"]
    assert memory["arena_32bit_bytes"] == rep["model"]["arena_32bit"]["arena_bytes"]
    assert memory["arena_host_bytes"] == rep["model"]["arena_bytes"]
    assert {r["board"] for r in rep["board_fit"]} == set(boards())
    assert all(r["fits"] for r in rep["board_fit"])  # LeNet fits every board we know
    html = (run / "report.html").read_text()
    tables = _Tables(html).tables
    assert len(tables["board-fit-table"]) == 1 + len(boards())
    # readable labels with units, no JSON keys
    assert ["lower bound (no planner needs less)", f"{memory['lower_bound_bytes']:,} B"] in \
        tables["profile-table"]
    assert not any("_" in row[0] for row in tables["profile-table"])
    assert tables["board-fit-table"][0] == ["board", "fits", "arena (TFLM release)",
                                            "RAM needed", "flash: model + TFLM code",
                                            "latency (ms)"]
    nano = next(r for r in rep["board_fit"] if r["board"] == "arduino-nano33ble")
    assert [f"{nano['arena_bytes']:,} B (chirale-2.0.0-cmsis-nn)"] == [
        row[2] for row in tables["board-fit-table"] if row[0] == "arduino-nano33ble"]
    assert "# lenet on digits" in (run / "report.md").read_text()


def _ledger_cells(rep: dict) -> tuple[list[str], list[str]]:
    """The metric and change-vs-float cells the ledger table must show (positive =
    better than float: the sign of the console too), in report.json's order."""
    metric = rep["ledger"]["metric"]
    entries = [e for k, e in rep["ledger"].items() if k != "metric"]
    return ([f"{e[metric]:.4f}" for e in entries],
            [f"{0.0 - e['drop_pp']:+.2f}" if "drop_pp" in e else "—" for e in entries])


def test_html_holds_ledger_profile_memory_and_embedded_images(rendered):
    run, _, html, rep = rendered
    tables = _Tables(html).tables
    values, drops = _ledger_cells(rep)
    ledger = tables["ledger-table"][1:]
    assert [r[1] for r in ledger] == values and [r[3] for r in ledger] == drops
    assert [r[-1] for r in ledger].count("selected") == 1

    profile = layers(read_model(run / "model_int8.tflite"))
    assert tables["layers-table"][1:-1] == [
        [str(p.index), p.name, p.op, "×".join(map(str, p.output_shapes[0])), f"{p.params:,}",
         f"{p.macs:,}", f"{p.activation_bytes:,}"] for p in profile]
    assert tables["layers-table"][-1][-3:] == [f"{sum(p.params for p in profile):,}",
                                          f"{sum(p.macs for p in profile):,}",
                                          f"{sum(p.activation_bytes for p in profile):,}"]
    memory = {r[0]: r[1] for r in tables["memory-table"][1:]}
    assert memory["arena, 64-bit host"] == f"{rep['model']['arena_bytes']:,} B"
    assert memory["arena, 32-bit MCU (derived)"] == \
        f"{rep['model']['arena_32bit']['arena_bytes']:,} B"

    images = PNG_URI.findall(html)
    assert len(images) == html.count("<img") >= 3  # training curves, two confusion matrices
    for data in images:
        assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 200
    assert not re.search(r"https?://|@import|url\(", html)
    assert all(v.startswith(("data:", "#")) for v in re.findall(r'(?:src|href)="([^"]*)"', html))
    assert not any(s in html for s in ('id="parity"', 'id="per-layer-error"', 'id="firmware"'))


def test_markdown_references_pngs_that_exist(rendered):
    run, md, _, rep = rendered
    refs = MD_IMAGE.findall(md)
    assert {"plots/training_curves.png", "plots/confusion_float.png",
            "plots/confusion_int8.png"} <= set(refs)
    for ref in refs:
        assert (run / ref).read_bytes().startswith(b"\x89PNG")
    values, drops = _ledger_cells(rep)
    plain = md.replace("**", "")  # the selected model's row is bold
    assert all(f"| {v} |" in plain for v in values + drops)


def test_optional_sections_appear_with_their_data(rendered, tmp_path):
    from tflm_pipeline import firmware

    run = tmp_path / "run"
    shutil.copytree(rendered[0], run)
    rep = json.loads((run / "report.json").read_text())
    rep["parity"] = {"reference": "QAT Keras", "rungs": [
        {"rung": "QAT Keras", "accuracy": 0.9, "agreement": None},
        {"rung": "TFLM int8", "accuracy": 0.9, "agreement": 0.995, "max_diff": 0.0039,
         "mean_diff": 0.0004, "bit_exact_share": 0.875}]}
    rep["per_layer_error"] = [{"layer": "conv1", "op": "CONV_2D", "rmse_over_scale": 0.41},
                              {"layer": "fc1", "op": "FULLY_CONNECTED", "rmse_over_scale": 0.77}]
    rep["board_fit"] = [{"board": "arduino-nano33ble", "fits": True, "ram_needed": 250_000,
                         "ram": 262_144, "flash_needed": 400_000, "flash": 1_048_576,
                         "latency_ms": "12-17", "arena_bytes": 200_000,
                         "tflm_release": "chirale-2.0.0-cmsis-nn", "reasons": []},
                        {"board": "esp32", "fits": False, "ram_needed": 450_000, "ram": 532_480,
                         "flash_needed": 3_500_000, "flash": 4_194_304, "latency_ms": "9-20",
                         "arena_bytes": 200_000, "tflm_release": "esp-tflite-micro-1.2-xtensa",
                         "reasons": ["arena 200,000 B > largest heap block 113,792 B"]}]
    (run / "report.json").write_text(json.dumps(rep))
    project = firmware(run, "esp32").project

    md, html = (p.read_text() for p in render_reports(run))
    tables = _Tables(html).tables
    assert tables["parity-rungs-table"][2] == ["TFLM int8", "0.9", "0.995", "0.0039",
                                               "0.0004", "0.875"]
    board = tables["board-fit-table"]
    framework = 152_064  # the Nano 33 BLE's bootloader and mbed core (boards.yaml)
    assert board[1] == ["arduino-nano33ble", "yes", "200,000 B (chirale-2.0.0-cmsis-nn)",
                        "250,000 of 262,144 B",
                        f"{400_000 - framework:,} of {1_048_576 - framework:,} B", "12-17"]
    assert board[2][1] == "NO: arena 200,000 B > largest heap block 113,792 B"
    arena = json.loads((project.out_dir / "tflmp_project.json").read_text())["arena"]
    assert tables["firmware-table"][1][:4] == ["esp32", "firmware/esp32",
                                              f"{arena['arena_bytes']:,} B", arena["tree"]]
    assert "plots/per_layer_error.png" in MD_IMAGE.findall(md)
    assert (run / "plots" / "per_layer_error.png").is_file()
    assert all(f'id="{s}"' in html for s in ("parity", "per-layer-error", "board-fit",
                                             "firmware"))


def test_compare_runs_lists_both_ledgers_and_config_differences(rendered, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(rendered[0], a)
    shutil.copytree(rendered[0], b)
    config = json.loads((b / "config.json").read_text())
    (b / "config.json").write_text(json.dumps({**config, "epochs": config["epochs"] + 1}))

    html_path = compare_runs(a, b, tmp_path / "out" / "ab.html")
    assert html_path == tmp_path / "out" / "ab.html"
    html, md = html_path.read_text(), (tmp_path / "out" / "ab.md").read_text()
    tables = _Tables(html).tables
    epochs = config["epochs"]
    assert tables["config-diff-table"] == [["key", "A: a", "B: b"],
                                           ["epochs", str(epochs), str(epochs + 1)]]
    values, drops = _ledger_cells(rendered[3])
    assert [r[1:] for r in tables["ledger-table"][1:]] == [[v, d, v, d]
                                                           for v, d in zip(values, drops)]
    assert len(PNG_URI.findall(html)) == 2 and not re.search(r"https?://", html)
    for ref in MD_IMAGE.findall(md):
        assert (tmp_path / "out" / ref).is_file()

    missing = re.escape(str(tmp_path / "empty"))
    with pytest.raises(TflmpError, match=rf"^{missing} has no report\.json.*`tflmp train"):
        compare_runs(a, tmp_path / "empty")


def test_html_renders_in_headless_chromium(rendered, tmp_path):
    chromium = require_tool("chromium")
    url = (rendered[0] / "report.html").as_uri()

    def run(*args, profile):
        p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-quic", "--no-first-run", "--disable-background-networking",
                            "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={tmp_path / profile}", *args, url],
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr[-3000:]
        return p.stdout

    shot = tmp_path / "report.png"
    run(f"--screenshot={shot}", "--window-size=1280,2400", profile="shot")
    dom = run("--dump-dom", profile="dom")

    tables = _Tables(dom).tables
    assert {"ledger-table", "layers-table", "memory-table", "data-table"} <= set(tables)
    images = re.findall(r"<img\b[^>]*>", dom)
    assert len(images) >= 3 and all('data-loaded="yes"' in img for img in images), images
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.shape == (2400, 1280, 3) and shot.stat().st_size > 50_000
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
