"""The source roots stay source roots: a package named `operator` would shadow the standard library."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_source_roots_are_not_packages() -> None:
    for root in ("operator", "node-agent", "sim"):
        assert not (ROOT / root / "__init__.py").exists(), root


def test_packages_import() -> None:
    import gpu_operator
    import kubesim
    import mig_manager

    assert {gpu_operator.__name__, mig_manager.__name__, kubesim.__name__} == {"gpu_operator", "mig_manager", "kubesim"}
