"""Repository-wide pytest set-up: load the secret leak check for every test.

The check lives in ``tests/leakcheck.py``. It is loaded from here, the rootdir, because
``tests/`` has no ``__init__.py`` (``--import-mode=importlib``) so ``tests/leakcheck.py`` is not
importable by name, and a ``tests/conftest.py`` would be a second top-level module named
``conftest`` next to ``tests/config/conftest.py``, which ``mypy`` rejects. A rootdir conftest is
an initial conftest for any path under the repository, so no test directory runs without it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_NAME = "agent_identity_leakcheck"


def _load_leakcheck() -> ModuleType:
    # A conftest cannot name it in ``pytest_plugins`` (pytest would import it again by name,
    # and warn that it is already imported), so its hooks are re-exported below instead.
    loaded = sys.modules.get(_NAME)
    if loaded is not None:
        return loaded
    path = Path(__file__).resolve().parent / "tests" / "leakcheck.py"
    spec = importlib.util.spec_from_file_location(_NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the leak check from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_NAME] = module
    spec.loader.exec_module(module)
    return module


_leakcheck = _load_leakcheck()
pytest_addoption = _leakcheck.pytest_addoption
pytest_configure = _leakcheck.pytest_configure
pytest_unconfigure = _leakcheck.pytest_unconfigure
pytest_runtest_protocol = _leakcheck.pytest_runtest_protocol
pytest_sessionfinish = _leakcheck.pytest_sessionfinish
pytest_terminal_summary = _leakcheck.pytest_terminal_summary
