"""How a generated project is set up, built and uploaded: the command lines of each
target's tool (arduino-cli, idf.py, pio; esptool for an already built ESP32 image),
from ``firmware/targets.yaml``.  ``tflmp flash`` runs them; the project README lists
them."""

from __future__ import annotations

from pathlib import Path

from ..errors import TflmpError
from .targets import Target

INSTALL_HINTS = {
    "arduino-cli": "install arduino-cli (https://arduino.github.io/arduino-cli/latest/installation/)",
    "idf.py": "install ESP-IDF 5.1+ and run its export.sh (https://docs.espressif.com/projects/esp-idf/en/latest/esp32/get-started/)",
    "pio": "pip install platformio",
    "esptool.py": "pip install esptool",
}


def setup_commands(target: Target, project: Path | str = ".") -> list[list[str]]:
    """One-time steps a fresh machine needs before the first build: the board core and
    TFLM library (arduino-cli), the chip (idf.py).  PlatformIO installs what
    ``platformio.ini`` pins by itself."""
    b = target.build
    if b["tool"] == "arduino-cli":
        urls = ["--additional-urls", b["core_index_url"]] if b.get("core_index_url") else []
        cmds = [["arduino-cli", "core", "update-index", *urls],
                ["arduino-cli", "core", "install", b["core"], *urls]]
        cmds += [["arduino-cli", "lib", "install", lib] for lib in b.get("libraries", [])]
        return cmds
    if b["tool"] == "idf.py":
        return [["idf.py", "-C", str(project), "set-target", b["chip"]]]
    return []


def build_commands(target: Target, project: Path, port: str,
                   env: str | None = None) -> list[list[str]]:
    """The build and upload command lines for ``project`` on ``port``."""
    b = target.build
    d = str(project)
    if b["tool"] == "arduino-cli":
        return [["arduino-cli", "compile", "--fqbn", b["fqbn"], "--output-dir",
                 str(project / "build"), d],
                ["arduino-cli", "upload", "-p", port, "--fqbn", b["fqbn"], d]]
    if b["tool"] == "idf.py":
        return [["idf.py", "-C", d, "build"], ["idf.py", "-C", d, "-p", port, "flash"]]
    if b["tool"] == "pio":
        envs = [env] if env else list(b["envs"])
        return [["pio", "run", "-d", d, "-e", e, "-t", "upload", "--upload-port", port]
                for e in envs]
    raise TflmpError(f"target {target.name} has no known build tool")


def esptool_commands(project: Path, port: str, sketch: str) -> list[list[str]] | None:
    """Upload an already built ESP32 Arduino image with esptool alone, if one exists."""
    merged = project / "build" / f"{sketch}.ino.merged.bin"
    if not merged.is_file():
        return None
    return [["esptool.py", "--chip", "esp32", "--port", port, "write_flash", "0x0", str(merged)]]


def shell_lines(commands: list[list[str]]) -> list[str]:
    """Command lines as a user types them (arguments with spaces quoted)."""
    import shlex

    return [shlex.join(c) for c in commands]
