"""``tflmp flash``: set up, build and upload a project ``tflmp firmware`` wrote, with the
tool its target needs.

A fresh machine first needs the board core and TFLM library (arduino-cli) or the chip
set (idf.py): those steps run once per project, before the first build.  A missing
tool is one line saying how to install it and what would run; ``dry_run`` lists every
command without running any.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import TflmpError
from ..firmware_project import read_project
from ..mcu.targets import get_target
from ..mcu.toolchains import INSTALL_HINTS, build_commands, esptool_commands, setup_commands

SETUP_STAMP = ".tflmp_setup_done"  # in the project: its one-time setup has run


@dataclass
class FlashResult:
    project: Path
    setup: list[list[str]]  # one-time steps (empty when they already ran)
    commands: list[list[str]]  # build and upload
    ran: bool  # False for a dry run

    def to_dict(self) -> dict:
        return {"project": str(self.project), "setup": self.setup, "commands": self.commands,
                "ran": self.ran}


def flash(project: str | Path, port: str, *, env: str | None = None, dry_run: bool = False,
          run=subprocess.run) -> FlashResult:
    """Set up (once), build and upload ``project`` on ``port``; a dry run only lists the
    commands.  ``run`` executes one command (``subprocess.run``)."""
    project = Path(project)
    meta = read_project(project)
    target = get_target(meta.target)
    tool = target.build["tool"]
    if env is not None and tool != "pio":
        raise TflmpError("--env applies to PlatformIO projects only")
    if tool == "pio" and env not in target.build["envs"]:
        raise TflmpError(f"this PlatformIO project builds for {', '.join(target.build['envs'])}"
                         ": pass --env with the board on the port")
    stamp = project / SETUP_STAMP
    setup = [] if stamp.is_file() else setup_commands(target, project)
    commands = build_commands(target, project, port, env)
    if dry_run:
        return FlashResult(project, setup, commands, ran=False)
    if shutil.which(tool) is None:
        fallback = (esptool_commands(project, port, meta.sketch or "")
                    if target.name == "esp32" and shutil.which("esptool.py") else None)
        if fallback is None:
            raise TflmpError(f"{tool} not found: {INSTALL_HINTS[tool]}; then this runs: "
                             + " && ".join(shlex.join(c) for c in setup + commands))
        setup, commands = [], fallback
    for cmd in setup:
        _run(cmd, run)
    if setup:
        stamp.write_text("\n".join(shlex.join(c) for c in setup) + "\n")
    for cmd in commands:
        _run(cmd, run)
    return FlashResult(project, setup, commands, ran=True)


def _run(cmd: list[str], run) -> None:
    result = run(cmd)
    if result.returncode != 0:
        raise TflmpError(f"'{shlex.join(cmd)}' failed with exit code {result.returncode}")
