"""The reference pages in docs/ are what docs/generate.py makes from the code now:
a setting, route, metric or state added without regenerating them fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

GENERATOR = Path(__file__).resolve().parent.parent / "docs" / "generate.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_pages_are_up_to_date() -> None:
    generator = load_generator()
    stale = [
        name
        for name, text in generator.render().items()
        if (GENERATOR.parent / name).read_text() != text
    ]
    assert not stale, f"run `python docs/generate.py`: {stale} drifted from the code"


def test_every_setting_is_documented_and_only_secrets_lack_a_flag() -> None:
    import dataclasses

    from jobq.config import Settings

    for f in dataclasses.fields(Settings):
        assert f.metadata.get("doc"), f.name
    no_flag = {f.name for f in dataclasses.fields(Settings) if not f.metadata["flag"]}
    assert no_flag == {"api_tokens", "allowed_hosts", "app"}
