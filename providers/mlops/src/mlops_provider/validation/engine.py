"""Vectorised validation of one partition against a :class:`~mlops_provider.validation.contract.Contract`.

:func:`validate_frame` never drops a row: every input row ends up either in ``valid`` (typed as
declared) or in ``quarantine`` (with its original values and a ``_failed_checks`` column naming
each failed check, ``"; "``-joined). Schema breaks raise :class:`SchemaMismatchError` before any
output exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import SchemaMismatchError
from mlops_provider.partitions import day_bounds

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_provider.validation.contract import ColumnSpec, Contract

FAILED_CHECKS_COLUMN = "_failed_checks"


@dataclass
class ValidationResult:
    """Outcome of validating one partition."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    report: dict[str, Any]
    #: Per input row: whether it failed a check (the rows of ``quarantine``), in input order.
    invalid: np.ndarray | None = None

    @property
    def invalid_share(self) -> float:
        """Share of input rows that were quarantined."""
        return float(self.report["invalid_share"])


def _kind(series: pd.Series) -> str:
    """Classify a column's physical type: int, float, bool, datetime, string, empty or other."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "empty" if series.isna().all() else "float"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    return {
        "string": "string",
        "empty": "empty",
        "integer": "int",
        "floating": "float",
        "mixed-integer-float": "float",
        "boolean": "bool",
        "datetime": "datetime",
        "datetime64": "datetime",
    }.get(inferred, "string" if inferred.startswith("mixed") else "other")


_COMPATIBLE = {
    "string": {"string", "empty"},
    "int64": {"int", "float", "bool", "string", "empty"},
    "float64": {"int", "float", "string", "empty"},
    "bool": {"bool", "int", "string", "empty"},
    "timestamp": {"datetime", "string", "empty"},
}


def _coerce(series: pd.Series, spec: ColumnSpec, kind: str) -> tuple[pd.Series, np.ndarray]:
    """Return the column as the declared type and the mask of non-null values that did not parse."""
    import numpy as np
    import pandas as pd

    present = series.notna().to_numpy()
    if spec.type == "string":
        out = series.astype(object).where(series.notna(), None)
        return out, np.zeros(len(series), dtype=bool)
    if spec.type == "timestamp":
        if kind == "datetime":
            out = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
        else:
            out = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
        return out, present & out.isna().to_numpy()
    if spec.type == "bool":
        if kind == "bool":
            return series.astype("boolean"), np.zeros(len(series), dtype=bool)
        text = series.astype(str).str.strip().str.lower()
        mapped = text.map({"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False})
        out = mapped.where(series.notna()).astype("boolean")
        return out, present & out.isna().to_numpy()
    # Numbers.
    if kind in ("int", "float", "bool"):
        numeric = series.astype("float64") if kind != "int" else series
    else:
        numeric = pd.to_numeric(series, errors="coerce")
    bad = present & pd.isna(numeric).to_numpy()
    if spec.type == "int64":
        values = numeric.to_numpy(dtype="float64", na_value=np.nan) if kind != "int" else None
        if values is not None:
            fractional = np.zeros(len(series), dtype=bool)
            finite = np.isfinite(values)
            fractional[finite] = values[finite] != np.floor(values[finite])
            bad |= fractional
            out = pd.Series(np.where(bad | ~finite, np.nan, values), index=series.index).astype("Int64")
        else:
            out = numeric.astype("Int64")
        return out, bad
    return numeric.astype("float64"), bad


def check_schema(df: pd.DataFrame, contract: Contract) -> dict[str, Any]:
    """Compare columns and types with the contract; raise :class:`SchemaMismatchError` on a break."""
    declared = contract.column_names
    present = [str(c) for c in df.columns]
    missing = [c for c in declared if c not in present]
    extra = [c for c in present if c not in declared]
    problems = []
    if missing:
        hint = ""
        if len(present) == 1 and any(sep in present[0] for sep in (";", "\t", "|")):
            hint = " (the file has a single column: is it delimited by another character than ','?)"
        problems.append(f"missing columns {missing}{hint}")
    if extra and contract.extra_columns == "fail":
        problems.append(
            f"undeclared columns {extra} (declare them in {contract.source} or set extra_columns: drop|keep)"
        )
    kinds = {}
    for spec in contract.columns:
        if spec.name not in df.columns:
            continue
        kind = _kind(df[spec.name])
        kinds[spec.name] = kind
        if kind not in _COMPATIBLE[spec.type]:
            problems.append(f"column {spec.name!r} is {kind} ({df[spec.name].dtype}) but the contract says {spec.type}")
    schema = {"missing": missing, "extra": extra, "types": kinds, "extra_policy": contract.extra_columns}
    if problems:
        raise SchemaMismatchError(
            f"Schema of {contract.dataset or 'the data'} does not match {contract.source}: "
            + "; ".join(problems)
            + ". Nothing was written.",
            report={"schema": schema, "problems": problems},
        )
    return schema


def validate_frame(
    df: pd.DataFrame,
    contract: Contract,
    *,
    partition_date: date | None = None,
    history_rows: list[int] | None = None,
    now: datetime | None = None,
    max_invalid_share: float | None = None,
) -> ValidationResult:
    """Validate one partition; see the module docstring.

    :param df: the partition's rows as read from the raw zone.
    :param contract: the data contract.
    :param partition_date: the partition's day (for ``within_partition`` and ``freshness``).
    :param history_rows: input row counts of earlier partitions (for ``row_count_change``).
    :param now: the current time (for ``not_future``); defaults to the wall clock.
    :param max_invalid_share: overrides the contract's threshold.
    """
    import numpy as np
    import pandas as pd

    now = now or datetime.now(UTC)
    schema = check_schema(df, contract)
    df = df.reset_index(drop=True)
    n = len(df)
    masks: dict[str, np.ndarray] = {}
    details: dict[str, str] = {}
    typed: dict[str, pd.Series] = {}

    for spec in contract.columns:
        raw = df[spec.name]
        col, type_bad = _coerce(raw, spec, schema["types"][spec.name])
        if type_bad.any() and type_bad.sum() == raw.notna().sum():
            examples = raw[type_bad].astype(str).head(3).tolist()
            raise SchemaMismatchError(
                f"Column {spec.name!r} of {contract.dataset or 'the data'} cannot be read as {spec.type}: none of its "
                f"{int(type_bad.sum())} values parse (e.g. {examples}). Fix the source or the contract "
                f"{contract.source}. Nothing was written.",
                report={"schema": schema, "column": spec.name},
            )
        typed[spec.name] = col
        masks[f"{spec.name}:type"] = type_bad
        details[f"{spec.name}:type"] = f"values that do not parse as {spec.type}"
        null = col.isna().to_numpy() & ~type_bad
        if not spec.nullable:
            masks[f"{spec.name}:not_null"] = null
            details[f"{spec.name}:not_null"] = "null values"
        ok = ~null & ~type_bad
        if spec.min is not None or spec.max is not None:
            values = col.to_numpy(dtype="float64", na_value=np.nan) if spec.type != "timestamp" else None
            if values is not None:
                if spec.min is not None:
                    masks[f"{spec.name}:min"] = ok & (values < float(spec.min))
                    details[f"{spec.name}:min"] = f"values below {spec.min}"
                if spec.max is not None:
                    masks[f"{spec.name}:max"] = ok & (values > float(spec.max))
                    details[f"{spec.name}:max"] = f"values above {spec.max}"
        if spec.allowed is not None:
            allowed = list(spec.allowed)
            if spec.type == "bool":
                allowed = [bool(a) for a in allowed]
            masks[f"{spec.name}:allowed"] = ok & ~col.isin(allowed).to_numpy()
            details[f"{spec.name}:allowed"] = f"values outside {list(spec.allowed)}"
        if spec.pattern is not None:
            # Match each distinct value once: far cheaper than a regex per row.
            uniques = pd.Series(col[ok].unique(), dtype=object).astype(str)
            bad_values = set(uniques[~uniques.str.fullmatch(spec.pattern)])
            masks[f"{spec.name}:pattern"] = ok & col.isin(bad_values).to_numpy()
            details[f"{spec.name}:pattern"] = f"values not matching {spec.pattern}"
        if spec.unique:
            masks[f"{spec.name}:unique"] = ok & col.duplicated(keep="first").to_numpy()
            details[f"{spec.name}:unique"] = "repeated values (the first occurrence is kept)"
        if spec.type == "timestamp" and (spec.not_future or spec.within_partition):
            ts = col.dt.tz_convert("UTC")
            if spec.not_future:
                limit = pd.Timestamp(now).tz_convert("UTC") + spec.tolerance
                masks[f"{spec.name}:not_future"] = ok & (ts > limit).to_numpy()
                details[f"{spec.name}:not_future"] = f"timestamps after {limit.isoformat()}"
            if spec.within_partition and partition_date is not None:
                start, end = day_bounds(partition_date)
                lo, hi = pd.Timestamp(start - spec.tolerance), pd.Timestamp(end + spec.tolerance)
                masks[f"{spec.name}:within_partition"] = ok & ((ts < lo) | (ts >= hi)).to_numpy()
                details[f"{spec.name}:within_partition"] = f"timestamps outside {partition_date} (+/- {spec.tolerance})"

    checks: list[dict[str, Any]] = [
        {
            "name": name,
            "level": "row",
            "severity": "error",
            "failed_rows": int(mask.sum()),
            "passed": not bool(mask.any()),
            "detail": details[name],
        }
        for name, mask in masks.items()
    ]
    dataset_failed: list[str] = []
    for check in _dataset_checks(df, typed, contract, partition_date, history_rows or []):
        checks.append(check)
        if not check["passed"] and check["severity"] == "error":
            dataset_failed.append(check["name"])

    invalid = np.zeros(n, dtype=bool)
    for mask in masks.values():
        invalid |= mask
    if dataset_failed:
        invalid[:] = True
    reasons = np.full(int(invalid.sum()), "", dtype=object)
    for name, mask in masks.items():
        hit = mask[invalid]
        if hit.any():
            reasons[hit] = reasons[hit] + name + "; "
    for name in dataset_failed:
        reasons = reasons + name + "; "
    reasons = np.array([r[:-2] for r in reasons], dtype=object)

    keep = [c for c in df.columns if c not in contract.column_names and contract.extra_columns == "keep"]
    valid = pd.DataFrame({c: typed[c][~invalid] for c in contract.column_names}).reset_index(drop=True)
    for spec in contract.columns:
        if spec.type == "int64" and not valid.empty and valid[spec.name].notna().all():
            valid[spec.name] = valid[spec.name].astype("int64")
        elif spec.type == "int64" and valid.empty:
            valid[spec.name] = valid[spec.name].astype("int64")
    for c in keep:
        valid[c] = df[c][~invalid].reset_index(drop=True)
    quarantine = df[invalid].reset_index(drop=True)
    quarantine[FAILED_CHECKS_COLUMN] = pd.Series(reasons, dtype=object)

    share = float(invalid.sum()) / n if n else (1.0 if dataset_failed else 0.0)
    threshold = contract.max_invalid_share if max_invalid_share is None else float(max_invalid_share)
    failed = [c for c in checks if not c["passed"]]
    report = {
        "dataset": contract.dataset,
        "contract": contract.source,
        "partition": partition_date.isoformat() if partition_date else None,
        "input_rows": n,
        "valid_rows": int(n - invalid.sum()),
        "invalid_rows": int(invalid.sum()),
        "invalid_share": round(share, 6),
        "max_invalid_share": threshold,
        "passed": share <= threshold and not dataset_failed,
        "dataset_checks_failed": dataset_failed,
        "failed_checks": {c["name"]: c["failed_rows"] for c in failed},
        "checks": checks,
        "schema": {
            "missing": schema["missing"],
            "extra": schema["extra"],
            "extra_policy": schema["extra_policy"],
            "dropped_columns": [c for c in schema["extra"] if contract.extra_columns == "drop"],
        },
        "validated_at": now.isoformat(),
    }
    return ValidationResult(valid=valid, quarantine=quarantine, report=report, invalid=invalid)


#: Reason given to the rows of a failed partition that passed every row check themselves.
PARTITION_FAILED_CHECK = "partition:max_invalid_share"


def quarantine_partition(df: pd.DataFrame, result: ValidationResult) -> pd.DataFrame:
    """Return all of ``df`` as quarantine rows: a failed partition publishes nothing to the validated zone.

    Rows that failed a check keep their reasons; the others get :data:`PARTITION_FAILED_CHECK` (they are
    held back only because their partition failed). Original values, input order, one row per input row.
    """
    import numpy as np

    df = df.reset_index(drop=True)
    invalid = result.invalid if result.invalid is not None else np.zeros(len(df), dtype=bool)
    reasons = np.full(len(df), PARTITION_FAILED_CHECK, dtype=object)
    reasons[invalid] = result.quarantine[FAILED_CHECKS_COLUMN].to_numpy(dtype=object)
    out = df.copy()
    out[FAILED_CHECKS_COLUMN] = reasons
    return out


def _dataset_checks(
    df: pd.DataFrame,
    typed: dict[str, pd.Series],
    contract: Contract,
    partition_date: date | None,
    history_rows: list[int],
) -> list[dict[str, Any]]:
    import statistics

    n = len(df)
    out: list[dict[str, Any]] = []
    for check in contract.dataset_checks:
        opts = check.options
        base = {"level": "dataset", "severity": check.severity, "failed_rows": 0}
        if check.name == "row_count":
            lo, hi = opts.get("min", 0), opts.get("max")
            ok = n >= lo and (hi is None or n <= hi)
            out.append({**base, "name": "dataset:row_count", "passed": ok, "detail": f"{n} rows; expected {lo}..{hi}"})
        elif check.name == "row_count_change":
            lookback = int(opts.get("lookback_partitions", 7))
            recent = [h for h in history_rows[-lookback:] if h > 0]
            if not recent:
                out.append(
                    {**base, "name": "dataset:row_count_change", "passed": True, "detail": "no history to compare"}
                )
                continue
            median = statistics.median(recent)
            ratio = n / median if median else float("inf")
            hi, lo = float(opts.get("max_ratio", 5.0)), float(opts.get("min_ratio", 0.0))
            ok = lo <= ratio <= hi
            out.append(
                {
                    **base,
                    "name": "dataset:row_count_change",
                    "passed": ok,
                    "detail": f"{n} rows vs median {median:g} of the previous {len(recent)} partitions "
                    f"({ratio:.1f}x; allowed {lo:g}x..{hi:g}x)",
                }
            )
        elif check.name == "freshness":
            ts_col = contract.timestamp_column
            if not ts_col or partition_date is None or n == 0:
                continue
            newest = typed[ts_col].max()
            _, end = day_bounds(partition_date)
            import pandas as pd

            lag = pd.Timestamp(end) - newest if not pd.isna(newest) else None
            ok = lag is not None and lag <= opts["max_lag"]
            out.append(
                {
                    **base,
                    "name": "dataset:freshness",
                    "passed": bool(ok),
                    "detail": f"newest {ts_col} {newest} is {lag} before the end of {partition_date} "
                    f"(max {opts['max_lag']})",
                }
            )
        elif check.name == "null_share":
            limit = float(opts.get("max", 0.0))
            for name in opts.get("columns") or contract.column_names:
                nulls = int(df[name].isna().sum())
                share = nulls / n if n else 0.0
                ok = share <= limit
                out.append(
                    {
                        **base,
                        "name": f"{name}:null_share",
                        "passed": ok,
                        "failed_rows": nulls if not ok else 0,
                        "detail": f"{nulls} nulls ({share:.1%}; max {limit:.1%})"
                        + (" - the column is entirely null" if n and nulls == n else ""),
                    }
                )
    return out
