"""Spec validation: a valid spec's values and defaults, and one test per error, each naming file, key and expectation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlops_provider.exceptions import ModelSpecError
from mlops_provider.spec.load import load_spec, load_specs, parse_spec
from tests.conftest import REPO_ROOT

SOURCE = "include/models/refunds.yaml"


def parse(raw: dict[str, Any]):
    return parse_spec(raw, SOURCE, REPO_ROOT)


def test_valid_spec_and_its_defaults(spec_dict):
    spec = parse(spec_dict)
    assert spec.name == "refunds" and spec.dataset == "orders" and spec.feature_service == "refunds_v1"
    assert spec.entities == {"shop_id": "int64", "region_code": "string"}
    assert spec.derive == {"refunded": "refund_value > 0"}
    assert [a.name for a in spec.features.aggregates] == [
        "shop_id_count_1d",
        "shop_id_count_7d",
        "region_code_basket_value_mean_7d",
    ]
    assert spec.features.aggregates[2].tags == {
        "aggregation": "mean",
        "window": "7d",
        "column": "basket_value",
        "label_lag": "1d",
    }
    assert "label_lag" not in spec.features.aggregates[0].tags and "column" not in spec.features.aggregates[0].tags
    assert spec.feature_views == ["refunds__shop_id_aggregates", "refunds__region_code_aggregates", "refunds__shops"]
    assert spec.request_view == "refunds__request"
    assert spec.feature_columns[-3:] == ["basket_value_value", "items_value", "pay_method_value"]
    assert parse({**spec_dict, "features": {"entity_keys": ["region_code"]}}).feature_columns == ["region_code"]
    # Defaults (the README's table).
    assert spec.source.uri is None and spec.source.format == "auto" and spec.source.csv_delimiter == ","
    assert spec.training.backend is None and spec.training.params_file == "include/trainer/params.yaml"
    assert spec.training.window_days == 21
    assert spec.serving.enabled and spec.serving.prediction_range == (0.0, 1.0)
    assert spec.serving.canary_traffic_percent == 10 and spec.serving.max_latency_ms == 500.0
    assert spec.serving.autoscaling.manifest_options == {
        "min_replicas": 1,
        "max_replicas": 3,
        "scale_metric": None,
        "scale_target": None,
    }
    assert spec.drift.schedule == "0 */6 * * *" and spec.drift.window_days == 3 and spec.drift.policy == {}
    assert spec.materialization_schedule == "@daily" and spec.start_date == "2026-01-01"
    assert (spec.batch_scoring.enabled, spec.batch_scoring.schedule, spec.batch_scoring.window_days) == (
        True,
        "@daily",
        1,
    )
    assert spec.cooldown_minutes is None and spec.daily_cap is None and spec.gate_criteria == {}
    assert spec.features.static[0].timestamp_column == "valid_from"
    assert spec.column_types["ordered_at"] == "timestamp"


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Set a dotted key (``features.aggregates.1.window``), or delete it when ``value`` is ``DELETE``."""

    def mutate(raw: dict) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        key: Any = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        else:
            node[key] = value

    return mutate


DELETE = object()

ERRORS = [
    ("missing_name", _set("name", DELETE), "name: required key is missing"),
    ("unknown_top_level_key", _set("monitoring", "x"), "monitoring: unknown key; allowed: name, description"),
    ("bad_name", _set("name", "my model"), "name: expected a column name"),
    ("bad_dataset", _set("dataset", "../etc"), "dataset: expected a name of letters"),
    ("contract_file_missing", _set("contract", "include/contracts/nope.yaml"), "contract: expected a contract file"),
    ("contract_not_mapping", _set("contract", 42), "contract: expected a contract file path or a contract mapping"),
    ("contract_invalid", _set("contract.columns.items.type", "integer"), "contract.columns.items.type: 'integer'"),
    ("contract_other_dataset", _set("contract.dataset", "baskets"), "contract: the contract is for dataset 'baskets'"),
    (
        "timestamp_differs_from_contract",
        _set("timestamp_column", "order_id"),
        "timestamp_column: expected the contract's timestamp_column 'ordered_at', got 'order_id'",
    ),
    ("label_not_a_column", _set("label", "churned"), "label: expected a column of the contract"),
    ("label_is_an_entity", _set("label", "shop_id"), "label: expected a column other than the entity keys"),
    ("bad_task", _set("task", "ranking"), "task: expected one of binary, multiclass, regression, got 'ranking'"),
    ("entity_bad_type", _set("entities.shop_id", "int32"), "entities.shop_id: expected one of int64, string"),
    (
        "entity_type_differs",
        _set("entities.shop_id", "string"),
        "entities.shop_id: expected the contract's type 'int64'",
    ),
    ("entity_not_a_column", _set("entities.store_id", "int64"), "entities.store_id: expected a column of the contract"),
    ("no_entities", _set("entities", {}), "entities: expected at least one entity key"),
    (
        "derive_not_declared",
        _set("derive.margin", "basket_value - refund_value"),
        "derive.margin: expected a column declared in the contract",
    ),
    (
        "derive_call",
        _set("derive.refunded", "__import__('os').system('x')"),
        "derive.refunded: expected a safe expression",
    ),
    ("derive_attribute", _set("derive.refunded", "refund_value.sum()"), "derive.refunded: expected a safe expression"),
    (
        "derive_unknown_column",
        _set("derive.refunded", "refund_total > 0"),
        "reads 'refund_total', which is not a column",
    ),
    ("derive_self", _set("derive.refunded", "refunded + 1"), "reads 'refunded', which is not a column"),
    ("derive_syntax", _set("derive.refunded", "refund_value >"), "is not a valid expression"),
    ("source_format", _set("source", {"format": "xml"}), "source.format: expected one of auto, parquet, csv, jsonl"),
    ("source_unknown_key", _set("source", {"path": "x"}), "source.path: unknown key; allowed: uri, format"),
    ("features_not_mapping", _set("features", ["a"]), "features: expected a mapping"),
    (
        "aggregate_window",
        _set("features.aggregates.1.window", "7 days"),
        "features.aggregates[1].window: expected a duration like 7d",
    ),
    (
        "aggregate_window_in_list",
        _set("features.aggregates.0.windows", ["1d", "1y"]),
        "features.aggregates[0].windows[1]: expected a duration like 7d",
    ),
    (
        "aggregate_zero_window",
        _set("features.aggregates.0.windows", ["0d"]),
        "features.aggregates[0].windows[0]: expected a duration",
    ),
    (
        "aggregate_function",
        _set("features.aggregates.1.function", "median"),
        "features.aggregates[1].function: expected one of count, sum, mean, last, min, max, std, distinct_count",
    ),
    (
        "aggregate_entity",
        _set("features.aggregates.0.entity", "order_id"),
        "features.aggregates[0].entity: expected one of the entity keys",
    ),
    (
        "aggregate_needs_column",
        _set("features.aggregates.1.column", DELETE),
        "features.aggregates[1].column: expected the column to aggregate",
    ),
    (
        "aggregate_column_unknown",
        _set("features.aggregates.1.column", "tip_value"),
        "features.aggregates[1].column: expected a numeric column of the contract",
    ),
    (
        "aggregate_column_text",
        _set("features.aggregates.1.column", "pay_method"),
        "features.aggregates[1].column: expected a numeric column of the contract",
    ),
    (
        "aggregate_both_forms",
        _set("features.aggregates.1.windows", ["1d"]),
        "features.aggregates[1]: expected exactly one of window or windows",
    ),
    (
        "aggregate_label_lag",
        _set("features.aggregates.1.label_lag", "a day"),
        "features.aggregates[1].label_lag: expected a duration like 7d",
    ),
    ("aggregate_unknown_key", _set("features.aggregates.1.every", "1d"), "features.aggregates[1].every: unknown key"),
    (
        "static_type",
        _set("features.static.0.features.shop_age_days", "string"),
        "features.static[0].features.shop_age_days: expected one of int64, float64",
    ),
    (
        "static_entity",
        _set("features.static.0.entity", "pay_method"),
        "features.static[0].entity: expected one of the entity keys",
    ),
    (
        "static_placeholder",
        _set("features.static.0.path", "{root}/shops.parquet"),
        "features.static[0].path: expected no placeholder other than {data_root}",
    ),
    ("static_no_features", _set("features.static.0.features", {}), "features.static[0].features: expected a mapping"),
    ("request_text_column", _set("features.request", ["pay_method"]), "features.request[0]: expected a numeric column"),
    ("request_unknown", _set("features.request", ["tip"]), "features.request[0]: expected a column of the contract"),
    (
        "request_is_label",
        _set("features.request", ["refunded"]),
        "features.request: expected feature columns, got the label 'refunded'",
    ),
    (
        "categorical_numeric",
        _set("features.categoricals", ["items"]),
        "features.categoricals[0]: expected a string column",
    ),
    (
        "categorical_values",
        _set("features.categoricals", {"pay_method": ["card", "cash"]}),
        "features.categoricals: expected a list of string columns",
    ),
    (
        "entity_key_feature_unknown",
        _set("features.entity_keys", ["pay_method"]),
        "features.entity_keys[0]: expected one of the entity keys ['region_code', 'shop_id'], got 'pay_method'",
    ),
    (
        "rename_target_unknown",
        _set("source", {"rename": {"Shop ID": "shopid"}}),
        "source.rename.Shop ID: expected a column declared in the contract, got 'shopid'",
    ),
    ("no_features", _set("features", {"request": []}), "features: expected at least one feature"),
    ("feature_service", _set("feature_service", "v 1"), "feature_service: expected a name"),
    (
        "training_backend",
        _set("training", {"backend": "sagemaker"}),
        "training.backend: expected one of local, kubernetes, vertex",
    ),
    ("training_window", _set("training", {"window_days": 0}), "training.window_days: expected an integer >= 1, got 0"),
    (
        "params_file_missing",
        _set("training", {"params_file": "include/trainer/nope.yaml"}),
        "training.params_file: expected a trainer params file",
    ),
    (
        "params_file_other_task",
        _set("task", "multiclass"),
        "training.params_file: expected include/trainer/params.yaml to train the spec's task 'multiclass'",
    ),
    ("gate_unknown", _set("gate", {"criteria": {"min_metric": {}}}), "gate.criteria.min_metric: unknown key"),
    (
        "gate_segment_column",
        _set("gate", {"criteria": {"segments": {"column": "store"}}}),
        "gate.criteria.segments.column: expected a column of the contract",
    ),
    (
        "serving_range",
        _set("serving", {"prediction_range": [1, 0]}),
        "serving.prediction_range: expected [low, high] with low <= high",
    ),
    (
        "serving_canary",
        _set("serving", {"canary_traffic_percent": 150}),
        "serving.canary_traffic_percent: expected an integer from 1 to 100",
    ),
    ("serving_enabled", _set("serving", {"enabled": "yes"}), "serving.enabled: expected true or false"),
    (
        "autoscaling_metric",
        _set("serving", {"autoscaling": {"metric": "latency", "target": 5}}),
        "serving.autoscaling.metric: expected one of concurrency, rps, cpu, memory",
    ),
    (
        "autoscaling_bounds",
        _set("serving", {"autoscaling": {"min_replicas": 4, "max_replicas": 2}}),
        "serving.autoscaling.max_replicas: expected at least min_replicas (4), got 2",
    ),
    (
        "autoscaling_pair",
        _set("serving", {"autoscaling": {"metric": "rps"}}),
        "serving.autoscaling.target: metric and target go together",
    ),
    (
        "scale_to_zero_after_positive",
        _set("serving", {"autoscaling": {"min_replicas": 0, "scale_to_zero_after": 0}}),
        "serving.autoscaling.scale_to_zero_after: expected a positive number of seconds, got 0",
    ),
    (
        "scale_to_zero_after_number",
        _set("serving", {"autoscaling": {"min_replicas": 0, "scale_to_zero_after": "90s"}}),
        "serving.autoscaling.scale_to_zero_after: expected a number, got '90s'",
    ),
    (
        "scale_to_zero_after_needs_min_replicas_0",
        _set("serving", {"autoscaling": {"scale_to_zero_after": 30}}),
        "serving.autoscaling.scale_to_zero_after: applies only with min_replicas: 0 (got min_replicas: 1)",
    ),
    ("serving_backend", _set("serving", {"backend": "seldon"}), "serving.backend: expected one of local, kserve"),
    (
        "drift_cron",
        _set("drift", {"schedule": "every 6 hours"}),
        'drift.schedule: expected a cron expression of 5 fields like "0 */6 * * *"',
    ),
    (
        "drift_preset",
        _set("drift", {"schedule": "@fortnightly"}),
        "drift.schedule: expected a cron expression or one of @hourly",
    ),
    (
        "drift_critical",
        _set("drift", {"policy": {"critical_features": ["basket_value"]}}),
        "drift.policy.critical_features: expected features of the model",
    ),
    (
        "materialization_cron",
        _set("materialization", {"schedule": "daily"}),
        "materialization.schedule: expected a cron expression of 5 fields",
    ),
    (
        "batch_backend",
        _set("batch_scoring", {"backend": "dask"}),
        "batch_scoring.backend: expected one of local, got 'dask'",
    ),
    ("batch_window", _set("batch_scoring", {"window_days": 0}), "batch_scoring.window_days: expected an integer >= 1"),
    ("batch_key", _set("batch_scoring", {"windows": 2}), "batch_scoring"),
    ("cooldown", _set("retraining", {"cooldown_minutes": -5}), "retraining.cooldown_minutes: expected an integer >= 0"),
    ("daily_cap", _set("retraining", {"daily_cap": 1.5}), "retraining.daily_cap: expected an integer >= 1"),
    ("start_date", _set("start_date", "1st of May"), "start_date: expected a date like 2026-01-01"),
]


@pytest.mark.parametrize(("mutate", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_each_error_names_file_key_and_expectation(spec_dict, mutate, expected):
    mutate(spec_dict)
    with pytest.raises(ModelSpecError) as info:
        parse(spec_dict)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: "), message
    if expected is not None:
        assert expected in message, message
    assert info.value.path == SOURCE and info.value.key


def test_duplicate_feature_names_are_refused(spec_dict):
    spec_dict["features"]["aggregates"][0] = {"entity": "shop_id", "functions": ["count"], "windows": ["7d", "7d"]}
    with pytest.raises(ModelSpecError, match=r"features: expected distinct feature names, got \['shop_id_count_7d'\]"):
        parse(spec_dict)


def test_the_params_file_must_train_the_specs_task(spec_dict, tmp_path):
    spec_dict["task"] = "regression"
    spec_dict["serving"] = {"prediction_range": [0, 100]}
    with pytest.raises(ModelSpecError) as info:
        parse(spec_dict)
    assert (
        "training.params_file: expected include/trainer/params.yaml to train the spec's task 'regression', it sets "
        "task 'binary' (no task key means binary); add 'task: regression'"
    ) in str(info.value)
    params = tmp_path / "params.yaml"
    params.write_text("task: regression\n")
    spec_dict["training"] = {"params_file": str(params)}
    assert parse(spec_dict).task == "regression"


def test_non_binary_tasks_need_a_prediction_range(spec_dict, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("task: regression\n")
    spec_dict.update(task="regression", training={"params_file": str(params)})
    with pytest.raises(ModelSpecError, match="serving.prediction_range: required for task regression"):
        parse(spec_dict)
    spec_dict["serving"] = {"enabled": False}
    assert not parse(spec_dict).serving.enabled


def test_not_a_mapping():
    with pytest.raises(ModelSpecError, match=r"^include/models/refunds.yaml: \(top level\): expected a mapping"):
        parse(["name"])  # type: ignore[arg-type]


def test_file_errors_name_the_file(write_spec, spec_dict, tmp_path):
    path = write_spec(spec_dict, name="other_name")
    with pytest.raises(ModelSpecError, match=r"other_name.yaml: name: expected the file's name 'other_name'"):
        load_spec(path, REPO_ROOT)
    broken = path.with_name("broken.yaml")
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ModelSpecError, match=r"broken.yaml: \(file\): .* is not valid YAML"):
        load_spec(broken, REPO_ROOT)


def test_contract_from_a_file(spec_dict, tmp_path):
    import yaml

    contract = tmp_path / "orders.yaml"
    contract.write_text(yaml.safe_dump(spec_dict["contract"]))
    spec_dict["contract"] = str(contract)
    spec = parse(spec_dict)
    assert spec.contract == str(contract) and spec.column_types["shop_id"] == "int64"


def test_folder_names_must_be_unique(write_spec, spec_dict, tmp_path):
    write_spec(spec_dict)
    other = dict(spec_dict, name="refunds_b")
    write_spec(other)
    with pytest.raises(
        ModelSpecError, match=r"refunds_b.yaml: dataset: expected a dataset no other spec uses, got 'orders'"
    ):
        load_specs(tmp_path / "models", REPO_ROOT)
    assert load_specs(tmp_path / "missing", REPO_ROOT) == []


def test_the_shipped_example_spec_is_valid():
    (spec,) = load_specs(REPO_ROOT / "include" / "models", REPO_ROOT)
    assert spec.name == "flight_delays" and spec.task == "regression"
    assert spec.timestamp_column != "event_timestamp"
    assert set(spec.entities.values()) == {"string"}
    assert spec.label in spec.derive
    assert any(a.label_lag for a in spec.features.aggregates)
    assert spec.features.static and spec.features.categoricals
    assert spec.path == REPO_ROOT / "include" / "models" / "flight_delays.yaml"
    assert Path(spec.contract).name == "departures.yaml"


def test_the_example_shares_no_name_with_the_fraud_example():
    import yaml

    (spec,) = load_specs(REPO_ROOT / "include" / "models", REPO_ROOT)
    fraud = yaml.safe_load((REPO_ROOT / "include" / "contracts" / "transactions.yaml").read_text())
    fraud_names = set(fraud["columns"]) | {"transactions", "fraud_detector", "fraud_model_v1", "customer", "merchant"}
    mine = set(spec.column_types) | {spec.name, spec.dataset, spec.feature_service, spec.label, *spec.entities}
    assert not fraud_names & mine


def test_distinct_count_may_read_a_text_column_and_last_may_not(spec_dict):
    spec_dict["features"]["aggregates"].append(
        {"entity": "shop_id", "column": "pay_method", "function": "distinct_count", "window": "7d"}
    )
    spec = parse(spec_dict)
    assert spec.features.aggregates[-1].name == "shop_id_pay_method_distinct_count_7d"
    spec_dict["features"]["aggregates"][-1]["function"] = "last"
    with pytest.raises(ModelSpecError, match=r"features.aggregates\[2\].column: expected a numeric column"):
        parse(spec_dict)
