"""Data contracts: a declared schema plus dataset-level checks, read from YAML.

A contract looks like this (one YAML file per dataset)::

    dataset: <dataset>
    timestamp_column: event_time
    extra_columns: fail            # fail | drop | keep
    max_invalid_share: 0.05
    columns:
      price: {type: float64, nullable: false, min: 0}
      kind: {type: string, allowed: [a, b, c]}
      event_time: {type: timestamp, not_future: true, within_partition: true, tolerance: 1h}
    dataset_checks:
      row_count: {min: 1, max: 5000000}
      row_count_change: {max_ratio: 5.0, min_ratio: 0.2, lookback_partitions: 7}
      freshness: {max_lag: 6h, severity: warn}
      null_share: {max: 0.02}

Types: ``string``, ``int64``, ``float64``, ``bool``, ``timestamp``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from mlops_provider.exceptions import MlopsError

TYPES = ("string", "int64", "float64", "bool", "timestamp")
EXTRA_COLUMN_POLICIES = ("fail", "drop", "keep")
SEVERITIES = ("error", "warn")
_COLUMN_KEYS = {
    "type",
    "nullable",
    "unique",
    "min",
    "max",
    "allowed",
    "pattern",
    "not_future",
    "within_partition",
    "tolerance",
    "description",
}
_DATASET_CHECKS = {"row_count", "row_count_change", "freshness", "null_share"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ContractError(MlopsError):
    """The contract file itself is invalid; the message names the key to fix."""


def parse_duration(value: Any, where: str) -> timedelta:
    """Parse ``30s``, ``15m``, ``6h``, ``7d`` or ``2w`` (or a number of seconds) into a timedelta."""
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ContractError(f"{where}: {value!r} is not a duration like '30m', '6h' or '7d'.")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@dataclass(frozen=True)
class ColumnSpec:
    """Declared type and row-level checks of one column."""

    name: str
    type: str
    nullable: bool = True
    unique: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    pattern: str | None = None
    not_future: bool = False
    within_partition: bool = False
    tolerance: timedelta = timedelta(0)


@dataclass(frozen=True)
class DatasetCheck:
    """A check over a whole partition; ``severity`` error quarantines the partition when it fails."""

    name: str
    options: dict[str, Any]
    severity: str = "error"


@dataclass(frozen=True)
class Contract:
    """A parsed data contract."""

    dataset: str
    columns: tuple[ColumnSpec, ...]
    timestamp_column: str | None = None
    extra_columns: str = "fail"
    max_invalid_share: float = 0.05
    dataset_checks: tuple[DatasetCheck, ...] = field(default_factory=tuple)
    source: str = ""

    @property
    def column_names(self) -> list[str]:
        """Declared column names, in contract order."""
        return [c.name for c in self.columns]

    def check(self, name: str) -> DatasetCheck | None:
        """Return the dataset check called ``name``, if declared."""
        return next((c for c in self.dataset_checks if c.name == name), None)


def _column(name: str, raw: Any, where: str) -> ColumnSpec:
    if isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, dict):
        raise ContractError(f"{where}.columns.{name}: expected a mapping like {{type: int64}}, got {raw!r}.")
    unknown = set(raw) - _COLUMN_KEYS
    if unknown:
        raise ContractError(f"{where}.columns.{name}: unknown keys {sorted(unknown)}; allowed: {sorted(_COLUMN_KEYS)}.")
    type_ = raw.get("type")
    if type_ not in TYPES:
        raise ContractError(f"{where}.columns.{name}.type: {type_!r} is not one of {', '.join(TYPES)}.")
    pattern = raw.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as err:
            raise ContractError(f"{where}.columns.{name}.pattern: invalid regular expression: {err}.") from None
    allowed = raw.get("allowed")
    return ColumnSpec(
        name=name,
        type=type_,
        nullable=bool(raw.get("nullable", True)),
        unique=bool(raw.get("unique", False)),
        min=raw.get("min"),
        max=raw.get("max"),
        allowed=tuple(allowed) if allowed is not None else None,
        pattern=pattern,
        not_future=bool(raw.get("not_future", False)),
        within_partition=bool(raw.get("within_partition", False)),
        tolerance=parse_duration(raw.get("tolerance", 0), f"{where}.columns.{name}.tolerance"),
    )


def parse_contract(raw: dict[str, Any], source: str = "<contract>") -> Contract:
    """Build a :class:`Contract` from its YAML mapping, with errors that name the offending key."""
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict) or not raw["columns"]:
        raise ContractError(f"{source}: a contract needs a non-empty 'columns' mapping.")
    columns = tuple(_column(str(n), spec, source) for n, spec in raw["columns"].items())
    policy = raw.get("extra_columns", "fail")
    if policy not in EXTRA_COLUMN_POLICIES:
        raise ContractError(f"{source}.extra_columns: {policy!r} is not one of {', '.join(EXTRA_COLUMN_POLICIES)}.")
    checks = []
    for name, options in (raw.get("dataset_checks") or {}).items():
        if name not in _DATASET_CHECKS:
            raise ContractError(f"{source}.dataset_checks.{name}: unknown check; known: {sorted(_DATASET_CHECKS)}.")
        options = dict(options or {})
        severity = options.pop("severity", "error")
        if severity not in SEVERITIES:
            raise ContractError(f"{source}.dataset_checks.{name}.severity: {severity!r} is not error or warn.")
        if name == "freshness":
            options["max_lag"] = parse_duration(options.get("max_lag", "1d"), f"{source}.dataset_checks.freshness")
        checks.append(DatasetCheck(name=name, options=options, severity=severity))
    timestamp_column = raw.get("timestamp_column")
    names = [c.name for c in columns]
    if timestamp_column is not None and timestamp_column not in names:
        raise ContractError(f"{source}.timestamp_column: {timestamp_column!r} is not a declared column.")
    share = float(raw.get("max_invalid_share", 0.05))
    if not 0.0 <= share <= 1.0:
        raise ContractError(f"{source}.max_invalid_share: {share} is not between 0 and 1.")
    return Contract(
        dataset=str(raw.get("dataset", "")),
        columns=columns,
        timestamp_column=timestamp_column,
        extra_columns=policy,
        max_invalid_share=share,
        dataset_checks=tuple(checks),
        source=source,
    )


def load_contract(path: str | Path, project_root: Path | None = None) -> Contract:
    """Read a contract file; a relative ``path`` is resolved against ``project_root``."""
    import yaml

    file = Path(path)
    if not file.is_absolute() and project_root is not None:
        file = project_root / file
    if not file.is_file():
        raise ContractError(
            f"Contract file {file} does not exist; pass contract= a path relative to [mlops] project_root "
            f"({project_root}) or an absolute path."
        )
    with file.open() as handle:
        try:
            raw = yaml.safe_load(handle)
        except yaml.YAMLError as err:
            raise ContractError(f"{file}: not valid YAML: {err}") from None
    return parse_contract(raw, str(file))
