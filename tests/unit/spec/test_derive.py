"""Derived columns: only columns, constants and operators are accepted; evaluation sees the named columns only."""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlops_provider.exceptions import SourceDataFormatError
from mlops_provider.spec.derive import ExpressionError, apply_derived, check_expression


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("a / 60", ["a"]),
        ("(a - b) * 2 ** 3 // 1 % 7", ["a", "b"]),
        ("a > 15", ["a"]),
        ("(a > 1) & ~(b == 'x') | (c > 0)", ["a", "b", "c"]),
        ("not (a > 1)", ["a"]),
        ("a >= 1 and b != 2 or True", ["a", "b"]),
        ("-a", ["a"]),
    ],
)
def test_allowed(expression, names):
    assert check_expression(expression, {"a", "b", "c"}) == names


@pytest.mark.parametrize(
    ("expression", "what"),
    [
        ("__import__('os').system('echo pwned')", "uses Call"),
        ("a.sum()", "uses Call"),
        ("a.values", "uses Attribute"),
        ("a[0]", "uses Subscript"),
        ("lambda: 1", "uses Lambda"),
        ("[a, b]", "uses List"),
        ("@a + 1", "not a valid expression"),
        ("a if b else c", "uses IfExp"),
        ("None", "uses the constant None"),
        ("d + 1", "reads 'd', which is not a column"),
        ("", "expected an expression"),
    ],
)
def test_refused(expression, what):
    with pytest.raises(ExpressionError, match=what.replace("(", r"\(")):
        check_expression(expression, {"a", "b", "c"})


def test_apply_derived_in_order_with_comparisons_as_integers():
    table = pa.table({"seconds": [60.0, 1800.0, -120.0], "kind": ["a", "b", "a"]})
    out = apply_derived(table, {"minutes": "seconds / 60", "late": "minutes > 15", "is_a": "kind == 'a'"}, "x dt=1")
    assert out.column("minutes").to_pylist() == [1.0, 30.0, -2.0]
    assert out.column("late").to_pylist() == [0, 1, 0] and out.column("late").type == pa.int64()
    assert out.column("is_a").to_pylist() == [1, 0, 1]
    assert out.column_names == ["seconds", "kind", "minutes", "late", "is_a"]


def test_apply_derived_missing_column_or_unsafe_expression_fails_not_retried():
    table = pa.table({"seconds": [1.0]})
    with pytest.raises(SourceDataFormatError, match=r"x dt=1: derived column 'minutes' = 'secs / 60' reads \['secs'\]"):
        apply_derived(table, {"minutes": "secs / 60"}, "x dt=1")
    with pytest.raises(SourceDataFormatError, match="uses Call"):
        apply_derived(table, {"minutes": "open('/etc/passwd')"}, "x dt=1")
