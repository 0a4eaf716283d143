"""The function-length ratchet (scripts/function_lengths.py, run by scripts/check)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "function_lengths", ROOT / "scripts" / "function_lengths.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("function_lengths", module)
    spec.loader.exec_module(module)
    return module


lengths = _load()


def _tree(tmp_path: Path, body_lines: int) -> Path:
    body = "".join(f"    x{n} = {n}\n" for n in range(body_lines))
    (tmp_path / "agentd").mkdir()
    (tmp_path / "agentd" / "m.py").write_text(
        f"class C:\n    def short(self) -> None:\n        pass\n\n\ndef long() -> None:\n{body}"
    )
    return tmp_path


def test_the_package_keeps_to_its_limits() -> None:
    assert lengths.check(ROOT) == []


def test_a_new_function_over_the_limit_fails(tmp_path: Path) -> None:
    root = _tree(tmp_path, 10)
    assert lengths.check(root, {}, limit=11) == []
    (problem,) = lengths.check(root, {}, limit=10)
    assert problem.startswith("agentd/m.py::long is 11 lines, over the limit of 10")


def test_a_listed_function_may_shrink_but_not_grow(tmp_path: Path) -> None:
    root = _tree(tmp_path, 30)
    assert lengths.check(root, {"agentd/m.py::long": 31}, limit=10) == []
    assert lengths.check(root, {"agentd/m.py::long": 40}, limit=10) == []
    (grew,) = lengths.check(root, {"agentd/m.py::long": 30}, limit=10)
    assert "grew to 31 lines, past its ceiling of 30" in grew
    (gone,) = lengths.check(root, {"agentd/m.py::C.gone": 30}, limit=40)
    assert gone == "agentd/m.py::C.gone is listed but no longer exists"


def test_methods_are_named_with_their_class(tmp_path: Path) -> None:
    names = dict(lengths.functions(_tree(tmp_path, 1) / "agentd" / "m.py", tmp_path))
    assert names == {"agentd/m.py::C.short": 2, "agentd/m.py::long": 2}
