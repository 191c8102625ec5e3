"""`module:attribute` references to a `jobq.App`, so child processes can import it."""

from __future__ import annotations

import difflib
import importlib
import sys
import traceback
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
    except ModuleNotFoundError as exc:
        if exc.name is None or not _is_package_of(exc.name, module_name):
            raise ConfigError(_import_failure(ref, exc)) from None
        raise ConfigError(f"--app: cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module raised: show where, in their code
        raise ConfigError(_import_failure(ref, exc)) from None
    finally:
        sys.path.pop(0)
    if not hasattr(module, attr):
        names = [name for name in vars(module) if not name.startswith("_")]
        close = difflib.get_close_matches(attr, names, n=1)
        hint = f" (did you mean {module_name}:{close[0]}?)" if close else ""
        raise ConfigError(f"--app: module {module_name} has no attribute {attr!r}{hint}")
    app = getattr(module, attr)
    if not isinstance(app, App):
        raise ConfigError(f"--app: {ref} is {type(app).__name__!r}, not a jobq.App")
    return app


def _is_package_of(missing: str, module_name: str) -> bool:
    """`missing` is module_name or one of its parent packages (the reference is wrong),
    not a module that the user's code imports."""
    return module_name == missing or module_name.startswith(missing + ".")


# Frames of these are not the user's: the import machinery and the CLI around it.
_NOT_USER_CODE = ("<frozen importlib", "/importlib/", "/typer/", "/click/")


def _import_failure(ref: str, exc: BaseException) -> str:
    """One first line, then the traceback of the import trimmed to the user's frames."""
    jobq_dir = str(Path(__file__).resolve().parent) + "/"
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(jobq_dir)
        and not any(part in frame.filename for part in _NOT_USER_CODE)
    ]
    detail = "".join(traceback.format_exception_only(exc)).rstrip()
    lines = [f"--app {ref}: importing it raised {detail.splitlines()[0]}"]
    if frames:
        lines.append("Traceback (most recent call last, your code only):")
        lines.extend(line.rstrip() for line in traceback.format_list(frames))
        lines.append(detail)
    return "\n".join(lines)


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
