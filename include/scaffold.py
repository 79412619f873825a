"""``make new-model``: a model spec, its contract and its trainer params from one data file.

    python -m include.scaffold --data FILE --label COLUMN_OR_EXPRESSION --timestamp COLUMN --entity COL[,COL]
        [--name NAME] [--label-lag 6h] [--force] [--project-root DIR] [--data-root URI]

Reads a Parquet, CSV or JSON lines file (by extension), checks it, and writes:

- ``include/contracts/<name>.yaml``: the inferred data contract;
- ``include/models/params/<name>.yaml``: trainer params with the task and fast defaults;
- ``include/models/<name>.yaml``: the model spec (checked with :func:`mlops_provider.spec.load.load_spec`);
- ``<data_root>/landing/<name>/dt=YYYY-MM-DD/part-0.<ext>``: the rows, one partition per UTC day.

Inference rules (each one documented where it is applied):

- types: integers ``int64``, floats ``float64``, booleans ``int64`` (landed as 0/1), text ``string``,
  datetimes ``timestamp``; a column is nullable only if the file has a null in it;
- ranges: ``min``/``max`` widened by half the observed range on each side (a column never seen negative
  stays ``>= 0``; integer bounds are rounded outwards), so next week's data passes and a unit change does not;
- ``allowed``: text columns with at most 20 distinct values;
- ``unique``: integer or text columns with no nulls and one distinct value per row, over at least 50 rows;
- the label: a column, or an expression evaluated by the spec's own ``derive`` (the same safe evaluator
  ingestion uses); the task is ``binary`` for exactly two values 0/1 (or booleans), ``multiclass`` for 3..20
  integer or text values, ``regression`` for other numbers;
- features: every other numeric column as a request feature, every low-cardinality text column as a
  categorical, ``count`` over 1d and 7d per entity; with ``--label-lag`` also the label's 7-day mean per entity.
  Left out, each with a printed note: constant columns, the columns the label expression reads, copies of the
  label (identical or perfectly correlated values, or a text column that maps one to one onto the label),
  identifiers (unique per row), other timestamps and text columns with more than 20 values.

Every problem is checked before anything is written; the command exits 2 with one message per problem.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_CATEGORIES = 20
MIN_ROWS_PER_CLASS = 20
MIN_ROWS_FOR_UNIQUE = 50
RANGE_MARGIN = 0.5
DEFAULT_WINDOW_DAYS = 21
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Gate floors per task (metric names of the gate's task defaults): modest, so a first model of unknown data can pass; tighten them once it has a champion.
GATE_CRITERIA: dict[str, dict[str, Any]] = {
    "binary": {"min_metrics": {"roc_auc": 0.6}, "max_regression": {"roc_auc": 0.02}},
    "multiclass": {"min_metrics": {"macro_f1": 0.2}, "max_regression": {"macro_f1": 0.02}},
    "regression": {"min_metrics": {"r2": 0.0}, "max_regression": {"r2": 0.02}},
}


class ScaffoldError(ValueError):
    """The data file or the arguments cannot give a model; ``problems`` holds one actionable message each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"- {p}" for p in problems))


@dataclass
class Plan:
    """Everything the scaffold would write, computed before writing anything."""

    name: str
    data_format: str
    frame: pd.DataFrame
    timestamp: str
    entities: dict[str, str]
    label: str
    label_expression: str | None
    task: str
    contract: dict[str, Any]
    spec: dict[str, Any]
    params: dict[str, Any]
    days: list[date]
    notes: list[str] = field(default_factory=list)


def model_name(data_file: Path) -> str:
    """Default model name: the file's stem as a lowercase identifier (``Flight-Delays 2026`` -> ``flight_delays_2026``)."""
    name = re.sub(r"[^a-z0-9_]+", "_", data_file.stem.lower()).strip("_") or "model"
    return name if name[0].isalpha() else f"m_{name}"


def identifier_names(columns: list[str]) -> dict[str, str]:
    """``{column: identifier}`` for the columns that are not identifiers (``Trip ID`` -> ``trip_id``), distinct."""
    taken = {c for c in columns if _IDENTIFIER.match(c)}
    out = {}
    for column in columns:
        if column in taken:
            continue
        base = re.sub(r"[^a-z0-9_]+", "_", column.strip().lower()).strip("_") or "column"
        base = base if base[0].isalpha() or base[0] == "_" else f"c_{base}"
        name = base
        for i in range(2, len(columns) + 2):
            if name not in taken:
                break
            name = f"{base}_{i}"
        taken.add(name)
        out[column] = name
    return out


def read_data(data_file: Path) -> tuple[pd.DataFrame, str]:
    """Read ``data_file`` by extension: ``(rows, format)``; text columns stay text (no type guessing)."""
    import pandas as pd

    fmt = FORMATS.get(data_file.suffix.lower())
    if fmt is None:
        raise ScaffoldError(
            [f"{data_file}: unknown extension {data_file.suffix!r}; expected one of {', '.join(sorted(FORMATS))}"]
        )
    if not data_file.is_file():
        raise ScaffoldError([f"{data_file}: no such file"])
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(data_file)
        elif fmt == "csv":
            frame = pd.read_csv(data_file)
        else:
            frame = pd.read_json(data_file, lines=True, convert_dates=False)
    except Exception as err:  # the reader's own message says what is wrong with the file
        raise ScaffoldError([f"{data_file}: cannot read it as {fmt} ({err})"]) from None
    if frame.empty:
        raise ScaffoldError([f"{data_file}: no rows"])
    return frame, fmt


def column_type(series: pd.Series) -> str:
    """Contract type of a column: booleans are ``int64`` (landed as 0/1)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "int64"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    if pd.api.types.is_integer_dtype(series):
        return "int64"
    if pd.api.types.is_float_dtype(series):
        # Whole numbers read as floats only because of nulls (CSV) are still integers.
        values = series.dropna()
        if len(values) and (values == values.round()).all() and series.isna().any():
            return "int64"
        return "float64"
    return "string"


def widened_range(series: pd.Series, integer: bool) -> tuple[float, float]:
    """``(min, max)`` widened by :data:`RANGE_MARGIN` of the observed range on each side.

    A column never seen negative keeps 0 as its floor (amounts, counts); a constant column gets half its
    magnitude (or 1) on each side; integer bounds are rounded outwards.
    """
    low, high = float(series.min()), float(series.max())
    margin = RANGE_MARGIN * (high - low) or max(abs(high) * RANGE_MARGIN, 1.0)
    lower, upper = low - margin, high + margin
    if low >= 0:
        lower = max(lower, 0.0)
    if integer:
        return float(math.floor(lower)), float(math.ceil(upper))
    return round(lower, 6), round(upper, 6)


def _number(value: float, integer: bool) -> int | float:
    return int(value) if integer else float(value)


def parse_timestamps(frame: pd.DataFrame, column: str) -> tuple[pd.Series, list[str]]:
    """The column as UTC timestamps (naive values are read as UTC) and the problems found."""
    import pandas as pd

    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw, [
            f"TIMESTAMP {column!r} holds numbers ({raw.dropna().head(3).tolist()}); "
            "export it as ISO 8601 text (2026-03-01T08:30:00Z) or a Parquet timestamp"
        ]
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
    else:
        parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
    problems = []
    missing = raw.isna()
    if missing.any():
        rows = missing[missing].index[:5].tolist()
        problems.append(
            f"TIMESTAMP {column!r} is missing in {int(missing.sum())} of {len(raw)} rows (first rows: {rows}); "
            "every row needs its event time: fill or drop them"
        )
    bad = parsed.isna() & ~missing
    if bad.any():
        examples = raw[bad].astype(str).head(5).tolist()
        problems.append(
            f"TIMESTAMP {column!r} cannot be parsed in {int(bad.sum())} of {len(raw)} rows, e.g. {examples}; "
            "expected ISO 8601 like 2026-03-01T08:30:00Z"
        )
    return parsed, problems


def _label(frame: pd.DataFrame, label: str, columns: list[str]) -> tuple[pd.DataFrame, str, str | None, list[str]]:
    """Return ``(frame with the label, label column, expression or None, columns the label reads)``."""
    import pyarrow as pa

    from mlops_provider.spec.derive import ExpressionError, apply_derived, check_expression

    if label in columns:
        return frame, label, None, [label]
    try:
        reads = check_expression(label)
    except ExpressionError as err:
        raise ScaffoldError(
            [f"LABEL {label!r} is neither a column nor an allowed expression ({err}); columns: {', '.join(columns)}"]
        ) from None
    unknown = [n for n in reads if n not in columns]
    if unknown:
        raise ScaffoldError(
            [f"LABEL {label!r} reads {unknown}, which the file does not have; columns: {', '.join(columns)}"]
        )
    if not reads:
        raise ScaffoldError([f"LABEL {label!r} reads no column: it would be the same for every row"])
    name = (
        "label" if "label" not in columns else next(f"label_{i}" for i in range(2, 100) if f"label_{i}" not in columns)
    )
    table = apply_derived(pa.Table.from_pandas(frame, preserve_index=False), {name: label}, "LABEL")
    derived = table.column(name).to_pandas()
    out = frame.copy()
    out[name] = derived.to_numpy()
    return out, name, label.strip(), reads


def infer_task(values: pd.Series, label: str) -> tuple[str, list[Any], list[str]]:
    """``(task, classes, problems)`` from the label's values (nulls are a problem of their own)."""
    import pandas as pd

    problems: list[str] = []
    nulls = int(values.isna().sum())
    if nulls:
        problems.append(f"LABEL {label!r} is null in {nulls} of {len(values)} rows; drop unlabelled rows from the file")
    present = values.dropna()
    if pd.api.types.is_bool_dtype(present):
        present = present.astype("int64")
    distinct = sorted(present.unique().tolist(), key=str)
    numeric = pd.api.types.is_numeric_dtype(present)
    whole = numeric and bool((present == present.round()).all())
    if len(distinct) < 2:
        problems.append(
            f"LABEL {label!r} has a single value ({distinct[0] if distinct else 'none'}) in every row: there is "
            "nothing to learn; pick another column or expression"
        )
        return "binary", distinct, problems
    if len(distinct) == 2:
        if numeric and set(distinct) <= {0, 1}:
            return "binary", [0, 1], problems
        problems.append(
            f"LABEL {label!r} has two values {distinct}, but a binary label is 0/1; "
            f'pass an expression such as LABEL="{label} == {distinct[-1]!r}"'
        )
        return "binary", distinct, problems
    if len(distinct) <= MAX_CATEGORIES and (whole or not numeric):
        return "multiclass", distinct, problems
    if numeric:
        return "regression", [], problems
    problems.append(
        f"LABEL {label!r} has {len(distinct)} distinct text values; the scaffold handles at most {MAX_CATEGORIES} "
        "classes (multiclass) or numbers (regression)"
    )
    return "multiclass", distinct, problems


def _is_copy_of(feature: pd.Series, label: pd.Series) -> str | None:
    """Why ``feature`` is the label in disguise, or None."""
    import pandas as pd

    both = pd.DataFrame({"f": feature, "y": label}).dropna()
    if len(both) < 3:
        return None
    if pd.api.types.is_numeric_dtype(both["f"]) and pd.api.types.is_numeric_dtype(both["y"]):
        f, y = both["f"].astype("float64"), both["y"].astype("float64")
        if (f == y).all():
            return "it equals the label in every row"
        if f.std() > 0 and y.std() > 0 and abs(f.corr(y)) > 0.9999:
            return f"it is perfectly correlated with the label (r = {f.corr(y):.4f})"
        classes = sorted(y.unique())
        if len(classes) == 2 and min(y.value_counts()) >= 10:
            # A binary label that a threshold on this column reproduces in every row was computed from it.
            low, high = f[y == classes[0]], f[y == classes[1]]
            if low.max() < high.min() or high.max() < low.min():
                return "a threshold on it gives the label in every row (the label is computed from it)"
        return None
    # A text column that maps one to one onto the label's values names the answer.
    if both.groupby("f")["y"].nunique().max() == 1 and both.groupby("y")["f"].nunique().max() == 1:
        return "each of its values goes with exactly one label value (a renamed copy)"
    return None


def build_plan(
    data_file: Path,
    *,
    label: str,
    timestamp: str,
    entities: list[str],
    name: str | None = None,
    label_lag: str | None = None,
    paths: dict[str, str] | None = None,
) -> Plan:
    """Read and check ``data_file`` and compute the contract, spec and params; nothing is written.

    :param paths: ``contract`` and ``params_file`` as the spec should name them.
    :raises ScaffoldError: with every problem found, each naming what to change.
    """
    import pandas as pd

    frame, fmt = read_data(data_file)
    name = name or model_name(data_file)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    problems: list[str] = []
    if not _IDENTIFIER.match(name):
        problems.append(f"NAME {name!r} must be letters, digits and '_' (starting with a letter)")
    # Contracts, expressions and features name columns as identifiers: others get one, and the spec's
    # source.rename maps the source's names at every ingestion (the file itself stays as it is).
    rename = identifier_names(columns)
    if rename:
        frame = frame.rename(columns=rename)
        columns = [rename.get(c, c) for c in columns]
        timestamp = rename.get(timestamp, timestamp)
        entities = [rename.get(e, e) for e in entities]
        label = rename.get(label, label)
    for role, wanted in (("TIMESTAMP", [timestamp]), ("ENTITY", entities)):
        for column in wanted:
            if column not in columns:
                problems.append(f"{role} {column!r} is not a column of {data_file.name}; columns: {', '.join(columns)}")
    if not entities:
        problems.append(
            "ENTITY is required: the column(s) whose history the aggregates follow, e.g. ENTITY=customer_id"
        )
    if problems:
        raise ScaffoldError(problems)

    frame, label_column, expression, label_reads = _label(frame, label, columns)
    parsed, ts_problems = parse_timestamps(frame, timestamp)
    problems += ts_problems
    entity_types: dict[str, str] = {}
    for column in entities:
        kind = column_type(frame[column])
        if kind not in ("int64", "string"):
            problems.append(f"ENTITY {column!r} is {kind}; an entity key must be integers or text")
        if frame[column].isna().any():
            problems.append(
                f"ENTITY {column!r} is null in {int(frame[column].isna().sum())} rows; every row needs its key"
            )
        entity_types[column] = "string" if kind == "string" else "int64"
    if label_column in entities or label_column == timestamp:
        problems.append(f"LABEL {label!r} is the timestamp or an entity key; the label must be another column")
    task, classes, task_problems = infer_task(frame[label_column], label)
    problems += task_problems
    if task in ("binary", "multiclass") and not task_problems:
        counts = frame[label_column].value_counts()
        for value, count in counts.items():
            if count < MIN_ROWS_PER_CLASS:
                problems.append(
                    f"LABEL {label!r}: class {value!r} has {int(count)} rows; at least {MIN_ROWS_PER_CLASS} per class "
                    "are needed to train and evaluate (add rows or merge rare classes in an expression)"
                )
    if problems:
        raise ScaffoldError(problems)

    frame = frame.copy()
    frame[timestamp] = parsed
    for column in frame.columns:
        if pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype("int64")
    notes: list[str] = [f"{original!r} is column {column} (source.rename)" for original, column in rename.items()]
    contract_columns: dict[str, dict[str, Any]] = {}
    request: list[str] = []
    categoricals: list[str] = []
    rows = len(frame)
    for column in frame.columns:
        series = frame[column]
        kind = column_type(series)
        entry: dict[str, Any] = {"type": kind, "nullable": bool(series.isna().any())}
        present = series.dropna()
        distinct = present.nunique()
        unique = (
            kind in ("int64", "string")
            and not entry["nullable"]
            and distinct == rows
            and rows >= MIN_ROWS_FOR_UNIQUE
            and column not in (timestamp, label_column)
        )
        if kind == "timestamp" and column == timestamp:
            entry.update(within_partition=True, tolerance="1h")
        elif kind in ("int64", "float64") and len(present) and column not in entities:
            # Not for entity keys either: ids grow past the range seen so far.
            if column == label_column and task != "regression":
                entry["allowed"] = [int(v) for v in classes]
            else:
                low, high = widened_range(present, kind == "int64")
                entry["min"], entry["max"] = _number(low, kind == "int64"), _number(high, kind == "int64")
        elif kind == "string" and 0 < distinct <= MAX_CATEGORIES and not unique and column not in entities:
            # Not for entity keys: tomorrow's new customer is not an invalid row.
            entry["allowed"] = sorted(str(v) for v in present.unique())
        if unique:
            entry["unique"] = True
        contract_columns[column] = entry

        # Features: what is left after the roles and the columns that would leak or carry nothing.
        if column in (timestamp, label_column) or column in entities:
            continue
        if column in label_reads and expression is not None:
            notes.append(f"{column}: not a feature, the label is computed from it ({expression})")
            continue
        if distinct <= 1:
            notes.append(f"{column}: not a feature, it is constant ({present.iloc[0] if len(present) else 'all null'})")
            continue
        leak = _is_copy_of(series, frame[label_column])
        if leak:
            notes.append(f"{column}: not a feature, {leak}: the model would see its answer")
            continue
        if unique:
            notes.append(f"{column}: not a feature, one value per row (an identifier)")
            continue
        if kind in ("int64", "float64"):
            request.append(column)
        elif kind == "string" and "allowed" in entry:
            categoricals.append(column)
        elif kind == "timestamp":
            notes.append(f"{column}: not a feature, a second timestamp (derive a duration from it in the spec)")
        else:
            notes.append(
                f"{column}: not a feature, text with {distinct} values (over {MAX_CATEGORIES}); make it an entity "
                "or derive a number from it"
            )

    days = sorted({d.date() for d in frame[timestamp]})
    rows_per_day = frame.groupby(frame[timestamp].dt.date).size()
    contract: dict[str, Any] = {
        "dataset": name,
        "description": f"Rows of {data_file.name}, inferred by make new-model; review the ranges and allowed values.",
        "timestamp_column": timestamp,
        "extra_columns": "fail",
        "max_invalid_share": 0.05,
        "columns": contract_columns,
        "dataset_checks": {
            "row_count": {"min": 1, "max": int(max(1000, 10 * rows_per_day.max())), "severity": "error"},
            "row_count_change": {"max_ratio": 5.0, "min_ratio": 0.2, "lookback_partitions": 7, "severity": "warn"},
        },
    }
    aggregates: list[dict[str, Any]] = [
        {"entity": e, "functions": ["count"], "windows": ["1d", "7d"]} for e in entities
    ]
    if label_lag:
        if task == "multiclass":
            notes.append("--label-lag: no label aggregate for a multiclass label (a mean of class codes means nothing)")
        else:
            # Only with the user's lag: a label joins the features once it is known, which the data cannot tell.
            aggregates += [
                {"entity": e, "column": label_column, "functions": ["mean"], "windows": ["7d"], "label_lag": label_lag}
                for e in entities
            ]
    features: dict[str, Any] = {"aggregates": aggregates}
    if request:
        features["request"] = request
    if categoricals:
        features["categoricals"] = categoricals
    window = min(DEFAULT_WINDOW_DAYS, len(days))
    paths = paths or {
        "contract": f"include/contracts/{name}.yaml",
        "params_file": f"include/models/params/{name}.yaml",
    }
    spec: dict[str, Any] = {
        "name": name,
        "description": f"{task.capitalize()} model of {label_column} from {data_file.name} (scaffolded; review it).",
        "dataset": name,
        "source": {"format": fmt, **({"rename": rename} if rename else {})},
        "contract": paths["contract"],
    }
    if expression is not None:
        spec["derive"] = {label_column: expression}
    spec.update(
        {
            "entities": entity_types,
            "timestamp_column": timestamp,
            "label": label_column,
            "task": task,
            "features": features,
            "materialization": {"schedule": "@daily"},
            "training": {"params_file": paths["params_file"], "window_days": window},
            "gate": {"criteria": GATE_CRITERIA[task]},
        }
    )
    if task == "regression":
        low, high = widened_range(frame[label_column].dropna(), False)
        spec["serving"] = {"prediction_range": [low, high]}
    elif task == "multiclass":
        spec["serving"] = {"prediction_range": [0, len(classes) - 1]}
    spec["drift"] = {"schedule": "0 */6 * * *", "window_days": 3}
    spec["retraining"] = {"cooldown_minutes": 360, "daily_cap": 2}
    params = {
        "task": task,
        "xgboost": {
            "tree_method": "hist",
            "device": "auto",
            "max_depth": 4,
            "eta": 0.2,
            "subsample": 0.9,
            "colsample_bytree": 0.9,
            "seed": 7,
        },
        "n_estimators": 60,
        "early_stopping_rounds": 10,
        "split": {"validation_fraction": 0.15, "holdout_fraction": 0.15},
    }
    return Plan(
        name=name,
        data_format=fmt,
        frame=frame,
        timestamp=timestamp,
        entities=entity_types,
        label=label_column,
        label_expression=expression,
        task=task,
        contract=contract,
        spec=spec,
        params=params,
        days=days,
        notes=notes,
    )


def _yaml(header: str, body: dict[str, Any]) -> str:
    import yaml

    return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120)


def partition_bytes(frame: pd.DataFrame, fmt: str, timestamp: str) -> bytes:
    """One day's rows as ``fmt``; text formats carry the timestamp as ISO 8601 UTC."""
    import io
    import json

    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()
    out = frame.copy()
    out[timestamp] = out[timestamp].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if fmt == "csv":
        out.to_csv(buffer, index=False)
        return buffer.getvalue()
    records = json.loads(out.to_json(orient="records", date_format="iso"))
    return ("\n".join(json.dumps(r, separators=(",", ":")) for r in records) + "\n").encode()


def land(plan: Plan, data_root: str) -> list[str]:
    """Write the rows to ``<data_root>/landing/<dataset>/dt=YYYY-MM-DD/part-0.<ext>``, one file per UTC day."""
    from mlops_provider.storage import write_bytes_atomic

    frame = plan.frame
    if plan.label_expression is not None:  # derived at ingestion, like in production
        frame = frame.drop(columns=[plan.label])
    uris = []
    for day, rows in frame.groupby(frame[plan.timestamp].dt.date, sort=True):
        uri = f"{data_root.rstrip('/')}/landing/{plan.name}/dt={day:%Y-%m-%d}/part-0.{plan.data_format}"
        write_bytes_atomic(partition_bytes(rows, plan.data_format, plan.timestamp), uri)
        uris.append(uri)
    return uris


def scaffold(
    data_file: Path,
    *,
    label: str,
    timestamp: str,
    entities: list[str],
    name: str | None = None,
    label_lag: str | None = None,
    force: bool = False,
    project_root: Path = ROOT,
    data_root: str | None = None,
) -> tuple[Plan, dict[str, Path], list[str]]:
    """Check ``data_file``, write contract, params and spec under ``project_root``, land the rows.

    Spec paths are relative to ``project_root`` when it is ``[mlops] project_root`` (where the DAGs resolve
    them), absolute otherwise.

    :returns: ``(plan, written files by kind, landed URIs)``.
    :raises ScaffoldError: nothing was written.
    """
    import yaml

    from mlops_provider.exceptions import ModelSpecError
    from mlops_provider.settings import get_settings
    from mlops_provider.spec.load import load_spec

    settings = get_settings()
    project_root = project_root.resolve()
    name = name or model_name(data_file)
    files = {
        "spec": project_root / "include" / "models" / f"{name}.yaml",
        "contract": project_root / "include" / "contracts" / f"{name}.yaml",
        "params": project_root / "include" / "models" / "params" / f"{name}.yaml",
    }
    relative = project_root == settings.project_root.resolve()
    paths = {
        "contract": str(files["contract"].relative_to(project_root) if relative else files["contract"]),
        "params_file": str(files["params"].relative_to(project_root) if relative else files["params"]),
    }
    problems = []
    if not force:
        for kind in ("spec", "contract"):
            if files[kind].exists():
                problems.append(f"{files[kind]} exists; pick another NAME or pass FORCE=1 to replace it")
    # The dataset is the model's name, and a dataset belongs to one spec (its zones and DAGs).
    for other in sorted(files["spec"].parent.glob("*.y*ml")):
        if other.stem != name:
            with contextlib.suppress(Exception):  # a broken spec is the DAG file's import error, not ours
                if (yaml.safe_load(other.read_text()) or {}).get("dataset") == name:
                    problems.append(f"{other} already uses dataset {name!r}; pick another NAME")
    try:
        plan = build_plan(
            data_file, label=label, timestamp=timestamp, entities=entities, name=name, label_lag=label_lag, paths=paths
        )
    except ScaffoldError as err:
        raise ScaffoldError(problems + err.problems) from None
    if problems:
        raise ScaffoldError(problems)
    header = f"# Scaffolded by `make new-model` from {data_file.name}: review it, then commit it.\n"
    texts = {
        "contract": _yaml(
            header
            + "# Ranges are the observed min/max widened by half the range; allowed lists the text values seen.\n",
            plan.contract,
        ),
        "params": _yaml(
            header + "# Fast defaults for a first model; raise n_estimators once it trains.\n", plan.params
        ),
        "spec": _yaml(header + "# Every key, with its default: README, Bring your own model.\n", plan.spec),
    }
    previous = {k: f.read_text() if f.exists() else None for k, f in files.items()}
    for kind in ("contract", "params", "spec"):
        files[kind].parent.mkdir(parents=True, exist_ok=True)
        files[kind].write_text(texts[kind])
    try:
        load_spec(files["spec"], project_root)
    except ModelSpecError as err:  # a scaffold bug: put back what was there
        for kind, text in previous.items():
            if text is None:
                files[kind].unlink(missing_ok=True)
            else:
                files[kind].write_text(text)
        raise ScaffoldError([f"the scaffolded spec does not load ({err}); please report it"]) from None
    return plan, files, land(plan, data_root or settings.data_root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="Parquet, CSV or JSON lines file")
    parser.add_argument("--label", required=True, help="label column, or an expression over columns")
    parser.add_argument("--timestamp", required=True, help="event time column")
    parser.add_argument("--entity", required=True, help="entity key column(s), comma separated")
    parser.add_argument("--name", default=None, help="model name (default: the file's name)")
    parser.add_argument("--label-lag", default=None, help="how long after the event its label is known, e.g. 6h")
    parser.add_argument("--force", action="store_true", help="replace an existing spec and contract")
    parser.add_argument("--project-root", type=Path, default=ROOT, help="where include/ is (default: this bundle)")
    parser.add_argument("--data-root", default=None, help="landing zone root (default: [mlops] data_root)")
    args = parser.parse_args(argv)
    try:
        plan, files, landed = scaffold(
            args.data,
            label=args.label,
            timestamp=args.timestamp,
            entities=[e.strip() for e in args.entity.split(",") if e.strip()],
            name=args.name,
            label_lag=args.label_lag or None,
            force=args.force,
            project_root=args.project_root,
            data_root=args.data_root,
        )
    except ScaffoldError as err:
        print(f"make new-model: nothing was written:\n{err}", file=sys.stderr)
        return 2
    features = plan.spec["features"]
    print(
        f"model {plan.name}: {plan.task} on {plan.label}"
        + (f" = {plan.label_expression}" if plan.label_expression else "")
    )
    print(f"  rows {len(plan.frame)} over {len(plan.days)} days ({plan.days[0]} .. {plan.days[-1]})")
    print(
        f"  features: request {features.get('request', [])}, categoricals {features.get('categoricals', [])}, "
        f"{len(features['aggregates'])} aggregate groups"
    )
    for note in plan.notes:
        print(f"  note: {note}")
    for kind, file in files.items():
        print(f"  wrote {kind:<8} {file}")
    print(f"  landed {len(landed)} partitions under {landed[0].rsplit('/dt=', 1)[0]}")
    lagged = [a["label_lag"] for a in features["aggregates"] if "label_lag" in a]
    print(
        f"  label aggregates: mean over 7d, counted {lagged[0]} after each event"
        if lagged
        else "  label aggregates: none (pass LABEL_LAG=<duration> once you know how long labels take to arrive)"
    )
    print(f"next: make demo MODEL={plan.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
