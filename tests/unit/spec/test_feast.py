"""The Feast objects of a spec: entities with their value types, tagged aggregate views, static views, request-time
features and the feature service; and the aggregate engine reads the generated tags back."""

from __future__ import annotations

import pytest

from mlops_provider.spec.load import parse_spec
from tests.conftest import REPO_ROOT


@pytest.fixture
def objects(spec_dict):
    from mlops_provider.spec.feast import spec_objects

    spec = parse_spec(spec_dict, "include/models/refunds.yaml", REPO_ROOT)
    return spec, spec_objects(spec, data_root="file:///data/zones")


def test_entities_carry_their_value_types(objects):
    from feast import ValueType

    _, objs = objects
    assert objs["refunds__shop_id"].join_key == "shop_id"
    assert objs["refunds__shop_id"].value_type == ValueType.INT64
    assert objs["refunds__region_code"].value_type == ValueType.STRING


def test_aggregate_views_are_tagged_for_the_aggregate_engine(objects):
    from mlops_provider.features.aggregates import spec_from_view

    spec, objs = objects
    view = objs["refunds__region_code_aggregates"]
    assert view.tags == {
        "mlops.aggregate.source": "orders",
        "mlops.aggregate.key": "region_code",
        "mlops.aggregate.timestamp": "ordered_at",
    }
    (field,) = view.features
    assert field.name == "region_code_basket_value_mean_7d"
    assert field.tags == {"aggregation": "mean", "window": "7d", "column": "basket_value", "label_lag": "1d"}
    assert view.batch_source.path == "/data/zones/features/refunds__region_code_aggregates"
    assert view.batch_source.timestamp_field == "ordered_at"
    assert view.ttl.total_seconds() == 0 and view.online
    counts = objs["refunds__shop_id_aggregates"]
    assert [f.name for f in counts.features] == ["shop_id_count_1d", "shop_id_count_7d"]
    assert all("column" not in f.tags and "label_lag" not in f.tags for f in counts.features)
    # The aggregate engine reads the tags back into the same definition.
    built = spec_from_view(counts)
    assert built.key == "shop_id" and built.timestamp == "ordered_at" and built.source_dataset == "orders"
    assert [(f.name, f.function, f.window.days) for f in built.fields] == [
        ("shop_id_count_1d", "count", 1),
        ("shop_id_count_7d", "count", 7),
    ]


def test_static_view_reads_the_table(objects):
    _, objs = objects
    view = objs["refunds__shops"]
    assert view.batch_source.path == "/data/zones/static/shops.parquet"
    assert view.batch_source.timestamp_field == "valid_from"
    assert [f.name for f in view.features] == ["shop_age_days"]
    assert view.entities == ["refunds__shop_id"]


def test_request_features_and_service(objects):
    spec, objs = objects
    source = objs["refunds__request_source"]
    assert [f.name for f in source.schema] == ["basket_value", "items", "pay_method"]
    odfv = objs["refunds__request"]
    assert [f.name for f in odfv.features] == ["basket_value_value", "items_value", "pay_method_value"]
    service = objs["refunds_v1"]
    assert service.tags == {"model": "refunds"}
    assert [p.name for p in service.feature_view_projections] == [
        "refunds__shop_id_aggregates",
        "refunds__region_code_aggregates",
        "refunds__shops",
        "refunds__request",
    ]
    features = [f.name for p in service.feature_view_projections for f in p.features]
    assert features == spec.feature_columns


def test_request_transform_keeps_categoricals_as_strings():
    from mlops_provider.spec.feast import request_transform

    transform = request_transform(("items",), ("pay_method",))
    out = transform({"items": [1, None], "pay_method": ["cash", None]})
    assert out == {"items_value": [1.0, None], "pay_method_value": ["cash", None]}


def test_repo_objects_of_a_folder_and_the_example_repo_module(write_spec, spec_dict, tmp_path, monkeypatch):
    from mlops_provider.settings import reset_settings
    from mlops_provider.spec.feast import repo_objects

    write_spec(spec_dict)
    objs = repo_objects(tmp_path / "models", data_root="file:///d")
    assert "refunds_v1" in objs and "refunds__shops" in objs
    # The bundle's repository module registers the shipped spec next to the fraud example.
    monkeypatch.setenv("AIRFLOW__MLOPS__MODEL_SPECS_FOLDER", str(REPO_ROOT / "include" / "models"))
    reset_settings()
    from mlops_provider.hooks.feast import FeastHook

    names = {o.name for o in FeastHook(repo_path=REPO_ROOT / "include" / "feature_repo").load_definitions()}
    assert {"fraud_model_v1", "flight_delays_v1", "flight_delays__airports", "customer_stats"} <= names


def test_request_view_survives_the_registry_round_trip(objects):
    """Feast rebuilds python-mode transformations from their source text: the text must stand alone."""
    from feast.on_demand_feature_view import OnDemandFeatureView

    _, objs = objects
    rebuilt = OnDemandFeatureView.from_proto(objs["refunds__request"].to_proto())
    out = rebuilt.feature_transformation.udf({"basket_value": [2.5], "items": [3], "pay_method": ["voucher"]})
    assert out == {"basket_value_value": [2.5], "items_value": [3.0], "pay_method_value": ["voucher"]}
