"""Derived columns: ``<column>: <expression>`` over other columns, checked when the spec is read.

An expression may use column names, numbers, strings, ``True``/``False``, arithmetic (``+ - * / // % **``),
comparisons (``== != < <= > >=``) and ``and``/``or``/``not`` (or ``& | ~``), e.g.
``total: unit_price * quantity`` or ``is_large: total > 1000``.
:func:`check_expression` walks the expression's syntax tree and refuses everything else (calls,
attributes, subscripts, lambdas, ``@`` references), so no code runs; :func:`apply_derived` then
evaluates it with ``pandas.eval`` over the named columns only. A comparison gives 0/1 integers.

Standard library at import time; pandas and pyarrow are imported inside :func:`apply_derived`.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from mlops_provider.exceptions import SourceDataFormatError

if TYPE_CHECKING:
    import pyarrow as pa

_OPERATORS = (
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.USub,
    ast.UAdd,
    ast.Not,
    ast.Invert,
    ast.BitAnd,
    ast.BitOr,
    ast.And,
    ast.Or,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
)
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Name, ast.Constant, ast.Load)
ALLOWED = "column names, numbers, strings, arithmetic (+ - * / // % **), comparisons and and/or/not"


class ExpressionError(ValueError):
    """A derived column's expression uses something other than columns, constants and operators."""


def check_expression(expression: str, columns: set[str] | None = None) -> list[str]:
    """Return the column names ``expression`` reads, after checking it only uses what is allowed.

    :param expression: the expression text.
    :param columns: names it may read; ``None`` accepts any name.
    :raises ExpressionError: naming what is not allowed.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ExpressionError(f"expected an expression over columns, got {expression!r}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"{expression!r} is not a valid expression ({err.msg})") from None
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, _OPERATORS):
            continue
        if not isinstance(node, _NODES):
            raise ExpressionError(f"{expression!r} uses {type(node).__name__}; only {ALLOWED} are allowed")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float | str | bool):
            raise ExpressionError(f"{expression!r} uses the constant {node.value!r}; only {ALLOWED} are allowed")
        if isinstance(node, ast.Name):
            if node.id in ("True", "False"):
                continue
            if columns is not None and node.id not in columns:
                raise ExpressionError(
                    f"{expression!r} reads {node.id!r}, which is not a column (known: {sorted(columns)})"
                )
            names.append((node.col_offset, node.id))
    ordered: list[str] = []
    for _, name in sorted(names):  # in reading order (ast.walk is breadth first)
        if name not in ordered:
            ordered.append(name)
    return ordered


def apply_derived(table: pa.Table, derive: dict[str, str], where: str) -> pa.Table:
    """Return ``table`` with each derived column computed (in order; later ones may read earlier ones).

    :param table: the source rows.
    :param derive: column -> expression.
    :param where: what the rows are (dataset and day), for error messages.
    :raises SourceDataFormatError: an expression is not allowed or reads a column the rows lack (not retried).
    """
    import pandas as pd
    import pyarrow as pa

    if not derive:
        return table
    frame = table.to_pandas()
    for column, expression in derive.items():
        try:
            names = check_expression(expression)
        except ExpressionError as err:
            raise SourceDataFormatError(f"{where}: derived column {column!r}: {err}.") from None
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise SourceDataFormatError(
                f"{where}: derived column {column!r} = {expression!r} reads {missing}, which the source rows lack "
                f"(columns: {list(frame.columns)}). Fix the export or the spec's derive; nothing was written."
            )
        # Only the named columns are visible; nothing outside them (no globals, no '@' locals).
        value = pd.eval(
            expression.strip(),
            local_dict={n: frame[n] for n in names},
            global_dict={},
            parser="pandas",
            engine="python",
        )
        if not isinstance(value, pd.Series):  # an expression of constants only
            value = pd.Series([value] * len(frame), index=frame.index)
        if pd.api.types.is_bool_dtype(value):
            value = value.astype("int64")
        frame[column] = value
    return pa.Table.from_pandas(frame, preserve_index=False)
