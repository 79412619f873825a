"""Read and validate model specs: ``<folder>/<model>.yaml``, one file per model.

Every error is a :class:`~mlops_provider.exceptions.ModelSpecError` whose message names the file, the key
and what was expected, e.g. ``include/models/x.yaml: features.aggregates[1].window: expected a duration
like 7d, got '7 days'``. The reference of every key, with its default, is the "Bring your own model"
section of the README; the :mod:`~mlops_provider.spec.model` dataclasses hold the parsed values.

Standard library and PyYAML only (plus the stdlib-only contract parser): the loader runs at DAG-parse time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mlops_provider.exceptions import ModelSpecError
from mlops_provider.names import SAFE_SEGMENT
from mlops_provider.serving.live_analysis import ON_INCONCLUSIVE
from mlops_provider.settings import BATCH_SCORING_BACKENDS, SERVING_BACKENDS, TRAINING_BACKENDS
from mlops_provider.spec.derive import ExpressionError, check_expression
from mlops_provider.spec.model import (
    AGGREGATE_FUNCTIONS,
    DASK_CLUSTERS,
    DEFAULT_PARAMS_FILE,
    ENTITY_TYPES,
    SCALE_METRICS,
    SCALE_TO_ZERO_AFTER,
    SERVING_MODES,
    SOURCE_FORMATS,
    STATIC_FEATURE_TYPES,
    TASKS,
    AggregateFeature,
    ApprovalSpec,
    AutoscalingSpec,
    BatchScoringSpec,
    DaskTrainingSpec,
    DriftSpec,
    FeaturesSpec,
    LabelsSpec,
    LiveAnalysisSpec,
    ModelSpec,
    ServingSpec,
    SourceSpec,
    StaticTable,
    TrainingSpec,
    request_feature_names,
)

SPEC_SUFFIXES = (".yaml", ".yml")
TOP_LEVEL_KEYS = (
    "name",
    "description",
    "owner",
    "tags",
    "start_date",
    "dataset",
    "source",
    "contract",
    "derive",
    "entities",
    "timestamp_column",
    "label",
    "task",
    "features",
    "feature_service",
    "materialization",
    "training",
    "gate",
    "serving",
    "drift",
    "retraining",
    "batch_scoring",
    "labels",
)
_REQUIRED = ("name", "dataset", "contract", "entities", "timestamp_column", "label", "task", "features")
_DURATION = re.compile(r"^\d+[smhdw]$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CRON_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")
_NUMERIC_TYPES = ("int64", "float64", "bool")


class _Reader:
    """Typed access to one spec's YAML values, raising errors that name the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str) -> ModelSpecError:
        return ModelSpecError(f"{self.source}: {key}: {expected}", path=self.source, key=key)

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        if allowed is not None:
            unknown = sorted(str(k) for k in value if k not in allowed)
            if unknown:
                raise self.fail(
                    f"{key}.{unknown[0]}" if key else unknown[0], f"unknown key; allowed: {', '.join(allowed)}"
                )
        return value

    def string(self, value: Any, key: str, *, pattern: re.Pattern[str] | None = None, expected: str = "") -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected {expected or 'a non-empty string'}, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise self.fail(key, f"expected {expected}, got {value!r}")
        return value

    def name(self, value: Any, key: str) -> str:
        text = self.string(value, key, expected="a name of letters, digits, '.', '_' or '-'")
        if not SAFE_SEGMENT.fullmatch(text):
            raise self.fail(key, f"expected a name of letters, digits, '.', '_' or '-', got {text!r}")
        return text

    def column(self, value: Any, key: str, columns: set[str] | None = None) -> str:
        text = self.string(value, key, pattern=_IDENTIFIER, expected="a column name (letters, digits, '_')")
        if columns is not None and text not in columns:
            raise self.fail(key, f"expected a column of the contract ({', '.join(sorted(columns))}), got {text!r}")
        return text

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def duration(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not _DURATION.match(value.strip()) or int(value.strip()[:-1]) == 0:
            raise self.fail(
                key, f"expected a duration like 7d (a positive integer and one of s, m, h, d, w), got {value!r}"
            )
        return value.strip()

    def integer(self, value: Any, key: str, *, minimum: int, default: int | None = None) -> int:
        if value is None and default is not None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def number(self, value: Any, key: str, default: float) -> float:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {value!r}")
        return float(value)

    def boolean(self, value: Any, key: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def list_of(self, value: Any, key: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {value!r}")
        return value

    def cron(self, value: Any, key: str) -> str:
        text = self.string(value, key, expected='a cron expression like "0 */6 * * *" or a preset like @daily')
        fields = text.split()
        if text.startswith("@"):
            if text not in _CRON_PRESETS:
                raise self.fail(key, f"expected a cron expression or one of {', '.join(_CRON_PRESETS)}, got {text!r}")
        elif len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise self.fail(key, f'expected a cron expression of 5 fields like "0 */6 * * *", got {text!r}')
        return text


def _display(path: Path, project_root: Path | None) -> str:
    """The spec's path as errors show it: relative to the project root when under it."""
    if project_root is not None:
        try:
            return str(path.resolve().relative_to(project_root.resolve()))
        except ValueError:
            pass
    return str(path)


def _read_yaml(file: Path, reader: _Reader, key: str) -> Any:
    import yaml

    try:
        # libyaml's safe loader when PyYAML has it: an order of magnitude faster at parse time.
        return yaml.load(file.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise reader.fail(key, f"{file} is not valid YAML ({err})") from None
    except OSError as err:
        raise reader.fail(key, f"cannot read {file} ({err.strerror})") from None


def _contract(raw: Any, reader: _Reader, project_root: Path | None, dataset: str, timestamp: str) -> tuple[Any, Any]:
    """Return ``(the spec's contract value, the parsed Contract)``."""
    from mlops_provider.validation.contract import ContractError, parse_contract

    if isinstance(raw, str):
        file = Path(raw)
        if not file.is_absolute() and project_root is not None:
            file = project_root / file
        if not file.is_file():
            raise reader.fail(
                "contract",
                f"expected a contract file (relative to the project root) or mapping; {raw!r} does not exist",
            )
        mapping = _read_yaml(file, reader, "contract")
        where = f"{reader.source}: contract ({raw})"
    elif isinstance(raw, dict):
        mapping, where = raw, f"{reader.source}: contract"
    else:
        raise reader.fail("contract", f"expected a contract file path or a contract mapping, got {raw!r}")
    try:
        contract = parse_contract(mapping, source=where)
    except ContractError as err:
        raise ModelSpecError(str(err), path=reader.source, key="contract") from None
    if contract.dataset and contract.dataset != dataset:
        raise reader.fail(
            "contract", f"the contract is for dataset {contract.dataset!r}, the spec's dataset is {dataset!r}"
        )
    if contract.timestamp_column and contract.timestamp_column != timestamp:
        raise reader.fail(
            "timestamp_column",
            f"expected the contract's timestamp_column {contract.timestamp_column!r}, got {timestamp!r}",
        )
    return raw, contract


def _aggregates(
    items: list[Any], reader: _Reader, entities: dict[str, str], numeric: set[str]
) -> list[AggregateFeature]:
    allowed = ("entity", "column", "function", "functions", "window", "windows", "label_lag", "prefix")
    out: list[AggregateFeature] = []
    for i, item in enumerate(items):
        key = f"features.aggregates[{i}]"
        item = reader.mapping(item, key, allowed)
        if not item:
            raise reader.fail(key, "expected a mapping with entity, function(s) and window(s)")
        entity = reader.string(item.get("entity"), f"{key}.entity", expected="an entity key")
        if entity not in entities:
            raise reader.fail(
                f"{key}.entity", f"expected one of the entity keys ({', '.join(entities)}), got {entity!r}"
            )
        lists: dict[str, list[str]] = {}
        for singular, plural in (("function", "functions"), ("window", "windows")):
            if (singular in item) == (plural in item):
                raise reader.fail(key, f"expected exactly one of {singular} or {plural}")
            k = singular if singular in item else plural
            values = [item[k]] if k == singular else reader.list_of(item[k], f"{key}.{k}")
            if not values:
                raise reader.fail(f"{key}.{k}", "expected at least one value")
            paths = [f"{key}.{k}"] if k == singular else [f"{key}.{k}[{j}]" for j in range(len(values))]
            if singular == "function":
                lists[singular] = [reader.choice(v, p, AGGREGATE_FUNCTIONS) for v, p in zip(values, paths, strict=True)]
            else:
                lists[singular] = [reader.duration(v, p) for v, p in zip(values, paths, strict=True)]
        column = item.get("column")
        if column is not None:
            column = reader.column(column, f"{key}.column")
            if column not in numeric and any(f not in ("count", "distinct_count") for f in lists["function"]):
                raise reader.fail(
                    f"{key}.column",
                    f"expected a numeric column of the contract for {lists['function']}, got {column!r}",
                )
        elif any(f != "count" for f in lists["function"]):
            raise reader.fail(
                f"{key}.column", f"expected the column to aggregate (only count needs none), for {lists['function']}"
            )
        label_lag = (
            reader.duration(item["label_lag"], f"{key}.label_lag") if item.get("label_lag") is not None else None
        )
        prefix = reader.column(item.get("prefix", entity), f"{key}.prefix")
        for function in lists["function"]:
            for window in lists["window"]:
                name = "_".join(p for p in (prefix, column, function, window) if p)
                out.append(AggregateFeature(name, entity, function, window, column, label_lag))
    return out


def _static(items: list[Any], reader: _Reader, entities: dict[str, str]) -> list[StaticTable]:
    out = []
    for i, item in enumerate(items):
        key = f"features.static[{i}]"
        item = reader.mapping(item, key, ("name", "entity", "path", "timestamp_column", "features"))
        name = reader.column(item.get("name"), f"{key}.name")
        entity = reader.string(item.get("entity"), f"{key}.entity", expected="an entity key")
        if entity not in entities:
            raise reader.fail(
                f"{key}.entity", f"expected one of the entity keys ({', '.join(entities)}), got {entity!r}"
            )
        path = reader.string(
            item.get("path"), f"{key}.path", expected="a Parquet file or folder URI ({data_root} allowed)"
        )
        if "{" in path.replace("{data_root}", ""):
            raise reader.fail(f"{key}.path", f"expected no placeholder other than {{data_root}}, got {path!r}")
        features = reader.mapping(item.get("features"), f"{key}.features")
        if not features:
            raise reader.fail(f"{key}.features", "expected a mapping of column: int64|float64")
        for column, type_ in features.items():
            reader.column(column, f"{key}.features.{column}")
            reader.choice(type_, f"{key}.features.{column}", STATIC_FEATURE_TYPES)
        timestamp = reader.column(item.get("timestamp_column", "valid_from"), f"{key}.timestamp_column")
        out.append(StaticTable(name, entity, path, {str(k): str(v) for k, v in features.items()}, timestamp))
    return out


def _features(raw: Any, reader: _Reader, contract: Any, entities: dict[str, str], label: str) -> FeaturesSpec:
    raw = reader.mapping(raw, "features", ("aggregates", "static", "request", "categoricals", "entity_keys"))
    types = {c.name: c.type for c in contract.columns}
    numeric = {n for n, t in types.items() if t in _NUMERIC_TYPES}
    aggregates = _aggregates(reader.list_of(raw.get("aggregates"), "features.aggregates"), reader, entities, numeric)
    for i, agg in enumerate(raw.get("aggregates") or []):
        if isinstance(agg, dict) and agg.get("column") is not None and agg["column"] not in types:
            raise reader.fail(
                f"features.aggregates[{i}].column", f"expected a column of the contract, got {agg['column']!r}"
            )
    static = _static(reader.list_of(raw.get("static"), "features.static"), reader, entities)
    request = []
    for i, column in enumerate(reader.list_of(raw.get("request"), "features.request")):
        key = f"features.request[{i}]"
        column = reader.column(column, key, set(types))
        if types[column] not in _NUMERIC_TYPES:
            raise reader.fail(
                key,
                f"expected a numeric column (int64, float64, bool), {column!r} is {types[column]}; list strings under categoricals",
            )
        request.append(column)
    if isinstance(raw.get("categoricals"), dict):
        raise reader.fail(
            "features.categoricals",
            "expected a list of string columns; the model learns their values from the data (allowed values, if "
            "any, belong in the contract)",
        )
    categoricals = []
    for i, column in enumerate(reader.list_of(raw.get("categoricals"), "features.categoricals")):
        key = f"features.categoricals[{i}]"
        column = reader.column(column, key, set(types))
        if types[column] != "string":
            raise reader.fail(key, f"expected a string column, {column!r} is {types[column]}")
        categoricals.append(column)
    entity_keys = []
    for i, column in enumerate(reader.list_of(raw.get("entity_keys"), "features.entity_keys")):
        if column not in entities:
            raise reader.fail(
                f"features.entity_keys[{i}]", f"expected one of the entity keys {sorted(entities)}, got {column!r}"
            )
        entity_keys.append(column)
    features = FeaturesSpec(tuple(aggregates), tuple(static), tuple(request), tuple(categoricals), tuple(entity_keys))
    for key, used in (("features.request", request), ("features.categoricals", categoricals)):
        if label in used:
            raise reader.fail(
                key, f"expected feature columns, got the label {label!r} (the model would see its answer)"
            )
    names = [a.name for a in aggregates] + [c for t in static for c in t.features] + request_feature_names(features)
    names += entity_keys
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise reader.fail("features", f"expected distinct feature names, got {duplicates} more than once (set prefix)")
    if not names:
        raise reader.fail(
            "features", "expected at least one feature (aggregates, static, request, categoricals or entity_keys)"
        )
    return features


def _check_params_file(path: str, reader: _Reader, project_root: Path | None, task: str) -> None:
    """The params file must exist and name the spec's task (no ``task:`` key means binary)."""
    file = Path(path)
    if not file.is_absolute() and project_root is not None:
        file = project_root / file
    if not file.is_file():
        raise reader.fail(
            "training.params_file",
            f"expected a trainer params file (relative to the project root); {path!r} does not exist",
        )
    params = _read_yaml(file, reader, "training.params_file") or {}
    if not isinstance(params, dict):
        raise reader.fail("training.params_file", f"expected {path} to hold a YAML mapping")
    declared = params.get("task", "binary")
    if declared != task:
        raise reader.fail(
            "training.params_file",
            f"expected {path} to train the spec's task {task!r}, it sets task {declared!r} (no task key means binary); "
            f"add 'task: {task}' to it or point params_file at another file",
        )


def parse_spec(raw: Any, source: str, project_root: Path | None = None, path: Path | None = None) -> ModelSpec:
    """Validate one spec's YAML mapping and return the :class:`~mlops_provider.spec.model.ModelSpec`.

    :param raw: the YAML mapping.
    :param source: how errors name the file (e.g. ``include/models/x.yaml``).
    :param project_root: base of relative paths (contract file, params file); ``None``: the working directory.
    :param path: the spec file, kept on the result.
    :raises ModelSpecError: naming the file, the key and what was expected.
    """
    reader = _Reader(source)
    if not isinstance(raw, dict):
        raise reader.fail("(top level)", f"expected a mapping of spec keys, got {type(raw).__name__}")
    reader.mapping(raw, "", TOP_LEVEL_KEYS)
    for key in _REQUIRED:
        if raw.get(key) is None:
            raise reader.fail(key, "required key is missing")
    name = reader.column(raw["name"], "name")
    dataset = reader.name(raw["dataset"], "dataset")
    timestamp = reader.column(raw["timestamp_column"], "timestamp_column")
    contract_value, contract = _contract(raw["contract"], reader, project_root, dataset, timestamp)
    columns = set(contract.column_names)
    if timestamp not in columns:
        raise reader.fail("timestamp_column", f"expected a column of the contract, got {timestamp!r}")
    if dict(zip(contract.column_names, (c.type for c in contract.columns), strict=True))[timestamp] != "timestamp":
        raise reader.fail(
            "timestamp_column", f"expected a column of type timestamp in the contract, {timestamp!r} is not"
        )
    label = reader.column(raw["label"], "label", columns)
    task = reader.choice(raw["task"], "task", TASKS)

    entities: dict[str, str] = {}
    for key, type_ in reader.mapping(raw["entities"], "entities").items():
        key = reader.column(key, f"entities.{key}", columns)
        entities[key] = reader.choice(type_, f"entities.{key}", ENTITY_TYPES)
        declared = next(c.type for c in contract.columns if c.name == key)
        if declared != type_:
            raise reader.fail(
                f"entities.{key}", f"expected the contract's type {declared!r} for {key!r}, got {type_!r}"
            )
    if not entities:
        raise reader.fail("entities", "expected at least one entity key: type (int64 or string)")
    if label in entities or label == timestamp:
        raise reader.fail("label", f"expected a column other than the entity keys and the timestamp, got {label!r}")

    derive: dict[str, str] = {}
    for column, expression in reader.mapping(raw.get("derive"), "derive").items():
        key = f"derive.{column}"
        column = reader.column(column, key)
        if column not in columns:
            raise reader.fail(
                key,
                f"expected a column declared in the contract (derived columns are validated like the others), got {column!r}",
            )
        try:
            check_expression(expression, columns - {column})
        except ExpressionError as err:
            raise reader.fail(key, f"expected a safe expression: {err}") from None
        derive[column] = expression.strip()

    source_raw = reader.mapping(raw.get("source"), "source", ("uri", "format", "csv_delimiter", "conn_id", "rename"))
    rename: dict[str, str] = {}
    for original, column in reader.mapping(source_raw.get("rename"), "source.rename").items():
        key = f"source.rename.{original}"
        if column not in columns:
            raise reader.fail(key, f"expected a column declared in the contract, got {column!r}")
        if column in rename.values():
            raise reader.fail(key, f"expected distinct column names, {column!r} is the name of two source columns")
        rename[str(original)] = column
    source_spec = SourceSpec(
        uri=reader.string(source_raw["uri"], "source.uri", expected="a URI")
        if source_raw.get("uri") is not None
        else None,
        format=reader.choice(source_raw.get("format", "auto"), "source.format", SOURCE_FORMATS),
        csv_delimiter=reader.string(
            source_raw.get("csv_delimiter", ","), "source.csv_delimiter", expected="a delimiter"
        ),
        conn_id=reader.string(source_raw["conn_id"], "source.conn_id")
        if source_raw.get("conn_id") is not None
        else None,
        rename=rename,
    )

    features = _features(raw["features"], reader, contract, entities, label)
    feature_service = reader.name(raw.get("feature_service", f"{name}_v1"), "feature_service")

    materialization = reader.mapping(raw.get("materialization"), "materialization", ("schedule",))
    training_raw = reader.mapping(raw.get("training"), "training", ("backend", "params_file", "window_days", "dask"))
    training_backend = (
        reader.choice(training_raw["backend"], "training.backend", TRAINING_BACKENDS)
        if training_raw.get("backend") is not None
        else None
    )
    training = TrainingSpec(
        backend=training_backend,
        dask=_dask_training(training_raw.get("dask"), training_backend, reader),
        params_file=reader.string(
            training_raw.get("params_file", DEFAULT_PARAMS_FILE), "training.params_file", expected="a path"
        ),
        window_days=reader.integer(training_raw.get("window_days"), "training.window_days", minimum=1, default=21),
    )
    _check_params_file(training.params_file, reader, project_root, task)

    gate = reader.mapping(raw.get("gate"), "gate", ("criteria",))
    criteria = reader.mapping(gate.get("criteria"), "gate.criteria", ("min_metrics", "max_regression", "segments"))
    segments = criteria.get("segments")
    if segments is not None:
        segments = reader.mapping(segments, "gate.criteria.segments", ("column", "min_rows", "metrics"))
        if segments.get("column") is not None and segments["column"] not in columns:
            raise reader.fail(
                "gate.criteria.segments.column", f"expected a column of the contract, got {segments['column']!r}"
            )

    serving_raw = reader.mapping(
        raw.get("serving"),
        "serving",
        (
            "enabled",
            "backend",
            "canary_traffic_percent",
            "prediction_range",
            "max_latency_ms",
            "max_error_rate",
            "smoke_requests",
            "autoscaling",
            "mode",
            "approval",
            "live_analysis",
        ),
    )
    enabled = reader.boolean(serving_raw.get("enabled"), "serving.enabled", True)
    scaling_raw = reader.mapping(
        serving_raw.get("autoscaling"),
        "serving.autoscaling",
        ("min_replicas", "max_replicas", "metric", "target", "scale_to_zero_after"),
    )
    autoscaling = AutoscalingSpec(
        min_replicas=reader.integer(
            scaling_raw.get("min_replicas"), "serving.autoscaling.min_replicas", minimum=0, default=1
        ),
        max_replicas=reader.integer(
            scaling_raw.get("max_replicas"), "serving.autoscaling.max_replicas", minimum=1, default=3
        ),
        metric=reader.choice(scaling_raw["metric"], "serving.autoscaling.metric", SCALE_METRICS)
        if scaling_raw.get("metric") is not None
        else None,
        target=reader.integer(scaling_raw["target"], "serving.autoscaling.target", minimum=1)
        if scaling_raw.get("target") is not None
        else None,
        scale_to_zero_after=reader.number(
            scaling_raw.get("scale_to_zero_after"), "serving.autoscaling.scale_to_zero_after", SCALE_TO_ZERO_AFTER
        ),
    )
    if autoscaling.scale_to_zero_after <= 0:
        raise reader.fail(
            "serving.autoscaling.scale_to_zero_after",
            f"expected a positive number of seconds, got {scaling_raw.get('scale_to_zero_after')!r}",
        )
    if "scale_to_zero_after" in scaling_raw and autoscaling.min_replicas != 0:
        raise reader.fail(
            "serving.autoscaling.scale_to_zero_after",
            f"applies only with min_replicas: 0 (got min_replicas: {autoscaling.min_replicas}); set min_replicas: 0 "
            "to let the model scale to zero, or remove scale_to_zero_after",
        )
    if autoscaling.max_replicas < autoscaling.min_replicas:
        raise reader.fail(
            "serving.autoscaling.max_replicas",
            f"expected at least min_replicas ({autoscaling.min_replicas}), got {autoscaling.max_replicas}",
        )
    if (autoscaling.metric is None) != (autoscaling.target is None):
        raise reader.fail(
            "serving.autoscaling.target" if autoscaling.target is None else "serving.autoscaling.metric",
            "metric and target go together, e.g. {metric: concurrency, target: 10}",
        )
    approval_raw = reader.mapping(
        serving_raw.get("approval"), "serving.approval", ("required", "timeout", "assigned_users")
    )
    users = approval_raw.get("assigned_users") or []
    if not isinstance(users, list):
        raise reader.fail("serving.approval.assigned_users", f"expected a list of Airflow user ids, got {users!r}")
    approval = ApprovalSpec(
        required=reader.boolean(approval_raw.get("required"), "serving.approval.required", False),
        timeout=reader.duration(approval_raw.get("timeout", "24h"), "serving.approval.timeout"),
        assigned_users=tuple(
            reader.string(user, f"serving.approval.assigned_users[{i}]", expected="an Airflow user id")
            for i, user in enumerate(users)
        ),
    )
    live_raw = reader.mapping(
        serving_raw.get("live_analysis"),
        "serving.live_analysis",
        ("enabled", "min_requests", "on_inconclusive", "inconclusive_wait"),
    )
    live_analysis = LiveAnalysisSpec(
        enabled=reader.boolean(live_raw.get("enabled"), "serving.live_analysis.enabled", True),
        min_requests=reader.integer(
            live_raw.get("min_requests"), "serving.live_analysis.min_requests", minimum=1, default=50
        ),
        on_inconclusive=reader.choice(
            live_raw.get("on_inconclusive", "probes"), "serving.live_analysis.on_inconclusive", ON_INCONCLUSIVE
        ),
        inconclusive_wait=reader.duration(
            live_raw.get("inconclusive_wait", "5m"), "serving.live_analysis.inconclusive_wait"
        ),
    )
    prediction_range = (0.0, 1.0)
    if serving_raw.get("prediction_range") is not None:
        value = serving_raw["prediction_range"]
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            or value[0] > value[1]
        ):
            raise reader.fail("serving.prediction_range", f"expected [low, high] with low <= high, got {value!r}")
        prediction_range = (float(value[0]), float(value[1]))
    elif enabled and task != "binary":
        raise reader.fail(
            "serving.prediction_range",
            f"required for task {task}: the smoke test checks every prediction falls in [low, high], e.g. [0, 600]",
        )
    serving = ServingSpec(
        enabled=enabled,
        backend=reader.choice(serving_raw["backend"], "serving.backend", SERVING_BACKENDS)
        if serving_raw.get("backend") is not None
        else None,
        canary_traffic_percent=reader.integer(
            serving_raw.get("canary_traffic_percent"), "serving.canary_traffic_percent", minimum=1, default=10
        ),
        prediction_range=prediction_range,
        max_latency_ms=reader.number(serving_raw.get("max_latency_ms"), "serving.max_latency_ms", 500.0),
        max_error_rate=reader.number(serving_raw.get("max_error_rate"), "serving.max_error_rate", 0.0),
        smoke_requests=reader.integer(
            serving_raw.get("smoke_requests"), "serving.smoke_requests", minimum=1, default=10
        ),
        autoscaling=autoscaling,
        mode=reader.choice(serving_raw["mode"], "serving.mode", SERVING_MODES)
        if serving_raw.get("mode") is not None
        else "transformer",
        approval=approval,
        live_analysis=live_analysis,
    )
    if serving.canary_traffic_percent > 100:
        raise reader.fail(
            "serving.canary_traffic_percent", f"expected an integer from 1 to 100, got {serving.canary_traffic_percent}"
        )

    drift_raw = reader.mapping(raw.get("drift"), "drift", ("enabled", "schedule", "window_days", "policy", "tests"))
    drift = DriftSpec(
        enabled=reader.boolean(drift_raw.get("enabled"), "drift.enabled", True),
        schedule=reader.cron(drift_raw.get("schedule", "0 */6 * * *"), "drift.schedule"),
        window_days=reader.integer(drift_raw.get("window_days"), "drift.window_days", minimum=1, default=3),
        policy=dict(reader.mapping(drift_raw.get("policy"), "drift.policy")),
        tests=dict(reader.mapping(drift_raw.get("tests"), "drift.tests")),
    )
    critical = drift.policy.get("critical_features") or []
    unknown = (
        [f for f in critical if f not in set(_feature_names(features))] if isinstance(critical, list) else critical
    )
    if unknown:
        raise reader.fail("drift.policy.critical_features", f"expected features of the model, got {unknown!r}")

    batch_raw = reader.mapping(
        raw.get("batch_scoring"), "batch_scoring", ("enabled", "schedule", "window_days", "backend")
    )
    batch_scoring = BatchScoringSpec(
        enabled=reader.boolean(batch_raw.get("enabled"), "batch_scoring.enabled", True),
        schedule=reader.cron(batch_raw.get("schedule", "@daily"), "batch_scoring.schedule"),
        window_days=reader.integer(batch_raw.get("window_days"), "batch_scoring.window_days", minimum=1, default=1),
        backend=reader.choice(batch_raw.get("backend", "local"), "batch_scoring.backend", BATCH_SCORING_BACKENDS),
    )
    labels = _labels(raw.get("labels"), reader, features) if "labels" in raw else None

    retraining = reader.mapping(raw.get("retraining"), "retraining", ("cooldown_minutes", "daily_cap"))
    start_date = str(raw.get("start_date", "2026-01-01"))
    if not _DATE.match(start_date):
        raise reader.fail("start_date", f"expected a date like 2026-01-01, got {raw.get('start_date')!r}")
    tags = reader.list_of(raw.get("tags"), "tags")
    return ModelSpec(
        name=name,
        dataset=dataset,
        contract=contract_value,
        entities=entities,
        timestamp_column=timestamp,
        label=label,
        task=task,
        features=features,
        feature_service=feature_service,
        source=source_spec,
        derive=derive,
        description=str(raw.get("description") or ""),
        owner=reader.string(raw.get("owner", "mlops"), "owner"),
        tags=tuple(reader.string(t, f"tags[{i}]") for i, t in enumerate(tags)),
        start_date=start_date,
        materialization_schedule=reader.cron(materialization.get("schedule", "@daily"), "materialization.schedule"),
        training=training,
        gate_criteria=dict(criteria),
        serving=serving,
        drift=drift,
        batch_scoring=batch_scoring,
        cooldown_minutes=reader.integer(retraining["cooldown_minutes"], "retraining.cooldown_minutes", minimum=0)
        if retraining.get("cooldown_minutes") is not None
        else None,
        daily_cap=reader.integer(retraining["daily_cap"], "retraining.daily_cap", minimum=1)
        if retraining.get("daily_cap") is not None
        else None,
        labels=labels,
        column_types={c.name: c.type for c in contract.columns},
        path=path,
    )


def _labels(raw: Any, reader: _Reader, features: FeaturesSpec) -> LabelsSpec:
    """The ``labels:`` section (``labels: {}`` enables label feedback with the defaults)."""
    from mlops_provider.drift.labels import JOIN_KINDS

    raw = reader.mapping(raw, "labels", ("source", "join", "max_delay", "tolerance", "min_rows", "schedule"))
    join = reader.choice(raw.get("join", "request_id"), "labels.join", JOIN_KINDS)
    if join == "entity_time" and not features.entity_keys:
        raise reader.fail(
            "labels.join",
            "entity_time needs entity keys that are model inputs (features.entity_keys): the prediction log holds "
            "only the model's inputs; join by request_id (the id every answer carries) instead",
        )
    return LabelsSpec(
        source=reader.string(raw["source"], "labels.source", expected="a folder URI")
        if raw.get("source") is not None
        else None,
        join=join,
        max_delay=reader.duration(raw.get("max_delay", "7d"), "labels.max_delay"),
        tolerance=reader.duration(raw.get("tolerance", "5m"), "labels.tolerance"),
        min_rows=reader.integer(raw.get("min_rows"), "labels.min_rows", minimum=1, default=200),
        schedule=reader.cron(raw.get("schedule", "@daily"), "labels.schedule"),
    )


def _feature_names(features: FeaturesSpec) -> list[str]:
    return (
        [a.name for a in features.aggregates]
        + [c for t in features.static for c in t.features]
        + request_feature_names(features)
    )


def load_spec(path: str | Path, project_root: Path | None = None) -> ModelSpec:
    """Read and validate one spec file.

    :param path: the YAML file.
    :param project_root: base of the spec's relative paths and of the file name errors show.
    :raises ModelSpecError: naming the file, the key and what was expected.
    """
    file = Path(path)
    source = _display(file, project_root)
    reader = _Reader(source)
    raw = _read_yaml(file, reader, "(file)")
    spec = parse_spec(raw, source, project_root, file)
    if file.stem != spec.name:
        raise reader.fail(
            "name", f"expected the file's name {file.stem!r} (one file per model: <name>.yaml), got {spec.name!r}"
        )
    return spec


def load_specs(folder: str | Path, project_root: Path | None = None) -> list[ModelSpec]:
    """Read every ``*.yaml``/``*.yml`` spec of ``folder`` (sorted by file name); a missing folder has none.

    Names must be unique across the folder: two models cannot share a dataset (each dataset's DAGs and
    zones belong to one model), a feature service, or a name.
    """
    base = Path(folder)
    if not base.is_dir():
        return []
    specs = [load_spec(p, project_root) for p in sorted(base.iterdir()) if p.suffix in SPEC_SUFFIXES and p.is_file()]
    seen: dict[tuple[str, str], str] = {}
    for spec in specs:
        source = _display(spec.path, project_root) if spec.path else spec.name
        for key, value in (("dataset", spec.dataset), ("feature_service", spec.feature_service)):
            other = seen.setdefault((key, value), source)
            if other != source:
                raise ModelSpecError(
                    f"{source}: {key}: expected a {key} no other spec uses, got {value!r}, which {other} uses too",
                    path=source,
                    key=key,
                )
    return specs


#: A Kubernetes CPU quantity ("4", "500m", "1.5") and memory quantity ("16Gi", "512Mi", "8G").
_CPU_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
#: A LocalCluster memory limit: a size dask reads ("4GiB", "512MB") or auto.
_LOCAL_MEMORY = re.compile(r"^(auto|\d+(\.\d+)?\s*(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB))$")


def _dask_training(raw: Any, backend: str | None, reader: _Reader) -> DaskTrainingSpec | None:
    """The ``training.dask`` block (only with ``training.backend: dask``)."""
    if raw is None:
        return DaskTrainingSpec() if backend == "dask" else None
    if backend != "dask":
        raise reader.fail("training.dask", f"only applies to training.backend: dask, not {backend!r}")
    allowed = ("cluster", "n_workers", "worker_cpu", "worker_memory", "gpus_per_worker")
    block = reader.mapping(raw, "training.dask", allowed)
    cluster = reader.choice(block.get("cluster", "local"), "training.dask.cluster", DASK_CLUSTERS)
    if cluster == "local":
        for key in ("worker_cpu", "gpus_per_worker"):
            if key in block:
                raise reader.fail(
                    f"training.dask.{key}",
                    "only applies to cluster: kubernetes (a LocalCluster runs one thread per worker process)",
                )
    memory = block.get("worker_memory")
    if memory is not None:
        pattern, expected = (
            (_LOCAL_MEMORY, 'a size like "4GiB" or auto')
            if cluster == "local"
            else (_MEMORY_QUANTITY, 'a Kubernetes memory quantity like "16Gi"')
        )
        memory = reader.string(str(memory), "training.dask.worker_memory", pattern=pattern, expected=expected)
    cpu = block.get("worker_cpu", "4")
    cpu = reader.string(
        str(cpu), "training.dask.worker_cpu", pattern=_CPU_QUANTITY, expected='a CPU quantity like "4" or "500m"'
    )
    return DaskTrainingSpec(
        cluster=cluster,
        n_workers=reader.integer(block.get("n_workers"), "training.dask.n_workers", minimum=1, default=2),
        worker_cpu=cpu,
        worker_memory=memory,
        gpus_per_worker=reader.integer(
            block.get("gpus_per_worker"), "training.dask.gpus_per_worker", minimum=0, default=1
        ),
    )
