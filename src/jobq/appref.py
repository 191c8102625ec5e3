"""`module:attribute` references to a `jobq.App`, so child processes can import it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobq.errors import ConfigError

if TYPE_CHECKING:
    from jobq.app import App

DEMO_APP_REF = "jobq.demo:app"


def load_app(ref: str | None) -> App:
    """Import `module:attribute` (from the current folder too, as `jobq worker
    --app` promises); the demo app when `ref` is None."""
    from jobq.app import App

    ref = ref or DEMO_APP_REF
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--app: expected module:attribute, got {ref!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--app: cannot import {module_name!r}: {exc}") from None
    finally:
        sys.path.pop(0)
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise ConfigError(f"--app: {ref!r} is not a jobq.App")
    return app


def find_app_ref(app: object) -> str | None:
    """The `module:attribute` under which `app` is importable, if any module
    already imported holds it at top level."""
    for name, module in list(sys.modules.items()):
        if module is None or name == "__main__":
            continue
        for attr, value in list(vars(module).items()):
            if value is app and not attr.startswith("_"):
                return f"{name}:{attr}"
    return None
