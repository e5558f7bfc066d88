"""Helpers of the soak tests: run a ``scripts/soak`` script, or load it to test its checks.

The soak scripts are not a package: :func:`load_script` loads one by path (registered in
``sys.modules`` so its dataclasses resolve), and :func:`run_script` runs one in its quick mode
as a subprocess, as CI does, and returns its exit code and its JSON summary line.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

SOAK_DIR = Path(__file__).resolve().parents[2] / "scripts" / "soak"
#: A quick mode takes well under a minute; this only stops a hung run from hanging CI.
RUN_TIMEOUT = 240.0


@dataclass(frozen=True)
class SoakRun:
    """The outcome of one soak script run."""

    returncode: int
    summary: dict[str, Any]
    stderr: str

    def explain(self) -> str:
        """What to show when an assertion about the run fails."""
        return f"summary: {json.dumps(self.summary)}\nstderr (tail): {self.stderr[-3000:]}"


def load_script(name: str) -> ModuleType:
    """Import ``scripts/soak/<name>.py`` as a module (once)."""
    module_name = f"soak_{name}"
    loaded = sys.modules.get(module_name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, SOAK_DIR / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args: str) -> SoakRun:
    """Run ``scripts/soak/<name>.py`` with ``args``; its last stdout line is the summary."""
    completed = subprocess.run(
        [sys.executable, str(SOAK_DIR / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    assert lines, f"{name} printed nothing; stderr:\n{completed.stderr[-3000:]}"
    summary = json.loads(lines[-1])
    assert isinstance(summary, dict)
    return SoakRun(completed.returncode, summary, completed.stderr)
