"""``tflmp flash``: build and upload a generated project with the tool it needs.

The command lines come from the project's target (``tflmp_project.json``).  A missing
tool is one line saying how to install it and what would have run; ``dry_run`` prints
the commands without running them.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

from .errors import TflmpError
from .targets import Target, get_target

INSTALL_HINTS = {
    "arduino-cli": "install arduino-cli (https://arduino.github.io/arduino-cli/latest/installation/)",
    "idf.py": "install ESP-IDF 5.1+ and run its export.sh (https://docs.espressif.com/projects/esp-idf/en/latest/esp32/get-started/)",
    "pio": "pip install platformio",
    "esptool.py": "pip install esptool",
}


def plan_commands(target: Target, project: Path, port: str, env: str | None = None) -> list[list[str]]:
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


def flash(project: str | Path, port: str, *, env: str | None = None,
          dry_run: bool = False, run=subprocess.run) -> list[list[str]]:
    """Build and upload ``project``; return the commands (run unless ``dry_run``)."""
    project = Path(project)
    meta_path = project / "tflmp_project.json"
    if not meta_path.is_file():
        raise TflmpError(f"{project} is not a project written by 'tflmp firmware' "
                         "(no tflmp_project.json)")
    meta = json.loads(meta_path.read_text())
    target = get_target(meta["target"])
    if env is not None and target.build["tool"] != "pio":
        raise TflmpError("--env applies to PlatformIO projects only")
    if target.build["tool"] == "pio" and env not in target.build["envs"]:
        raise TflmpError(f"this PlatformIO project builds for {', '.join(target.build['envs'])}"
                         ": pass --env with the board on the port")
    commands = plan_commands(target, project, port, env)
    tool = commands[0][0]
    if not dry_run and shutil.which(tool) is None:
        fallback = (esptool_commands(project, port, meta.get("sketch") or "")
                    if target.name == "esp32" and shutil.which("esptool.py") else None)
        if fallback is None:
            raise TflmpError(f"{tool} not found: {INSTALL_HINTS[tool]}; then this runs: "
                             + " && ".join(shlex.join(c) for c in commands))
        commands = fallback
    if not dry_run:
        for cmd in commands:
            result = run(cmd)
            if result.returncode != 0:
                raise TflmpError(f"'{shlex.join(cmd)}' failed with exit code {result.returncode}")
    return commands
