import jobq


def test_all_is_sorted_and_exact() -> None:
    assert jobq.__all__ == sorted(jobq.__all__)
    public = {name for name in dir(jobq) if not name.startswith("_")}
    # Submodules are importable but not part of __all__.
    modules = {name for name in public if type(getattr(jobq, name)).__name__ == "module"}
    assert set(jobq.__all__) - {"__version__"} == public - modules


def test_every_exported_name_resolves() -> None:
    for name in jobq.__all__:
        assert getattr(jobq, name) is not None
