"""No test module reads the wall clock when it is imported.

A value taken at import ("now", "today") goes stale while the suite runs; a
run that crosses midnight UTC then compares dates of two different days.
Tests that need dates use a fixed instant (and a clock that starts there).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CLOCK_READS = {"now", "utcnow", "today", "time", "localtime", "gmtime"}
CLOCK_OWNERS = {"datetime", "date", "time"}


class _ImportTimeCalls(ast.NodeVisitor):
    """Collect clock reads evaluated at import: outside function bodies."""

    def __init__(self) -> None:
        self.found: list[int] = []

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in CLOCK_READS
            and isinstance(func.value, ast.Name)
            and func.value.id in CLOCK_OWNERS
        ):
            self.found.append(node.lineno)
        self.generic_visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        # The body runs later; decorators and default values run at import.
        for decorator in getattr(node, "decorator_list", []):
            self.visit(decorator)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function
    visit_Lambda = _function


def test_no_test_module_reads_the_clock_at_import() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        finder = _ImportTimeCalls()
        finder.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        offenders += [f"{path.relative_to(TESTS)}:{line}" for line in finder.found]
    assert offenders == []


def test_the_check_sees_a_read_at_import() -> None:
    finder = _ImportTimeCalls()
    finder.visit(
        ast.parse(
            "NOW = datetime.now(UTC)\n"
            "@pytest.mark.parametrize('d', [date.today()])\n"
            "def test(d, at=time.time()):\n"
            "    later = datetime.now(UTC)\n"
        )
    )
    assert finder.found == [1, 2, 3]
