"""No training/serving skew for categorical features: a Feast ``String`` feature and a string entity key that is
also a model input give the same codes in the training set (trainer encoding) and in the transformer (online).

A private Feast repository (one view keyed by a string entity, one String and one Float64 feature) is applied and
materialized; the offline row of each entity (``get_historical_features`` -> ``training_set_frame`` ->
``encode_features``) must equal the transformer's online feature vector for the same entity, unseen categories,
nulls and an unknown entity included.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tests.serving_support import run_in_serving_python, save_mlflow_model

pytestmark = pytest.mark.integration

FEATURES = ["delay", "route", "carrier"]
CATEGORIES = {"route": ["r1", "r2"], "carrier": ["a", "b"]}  # carrier "c" and route "r9" were never trained on
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)

STORE_YAML = """project: categorical_skew
provider: local
registry: {registry_type: file, path: registry.db}
online_store: {type: sqlite, path: online_store.db}
offline_store: {type: file}
entity_key_serialization_version: 3
"""

ONLINE = """
import json, sys
from mlops_serving.transformer import FeastTransformer
repo, model_uri, features = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
transformer = FeastTransformer("m", feast_repo_path=repo, feature_service="carrier_model_v1", storage_uri=model_uri,
                               feature_names=features, reject_unknown_entities=False)
transformer.load()
matrix = transformer.features_for([{"carrier": c} for c in json.loads(sys.argv[4])])
print(json.dumps([[None if v != v else float(v) for v in row] for row in matrix.tolist()]))
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, String

    root = tmp_path_factory.mktemp("categorical-feast")
    (root / "feature_store.yaml").write_text(STORE_YAML)
    rows = pd.DataFrame(
        {
            "carrier": ["a", "b", "c"],
            "event_timestamp": [T0, T0, T0],
            "route": ["r2", None, "r9"],
            "delay": [1.5, 7.0, None],
        }
    )
    rows.to_parquet(root / "carrier_stats.parquet", index=False)
    carrier = Entity(name="carrier", join_keys=["carrier"], value_type=ValueType.STRING)
    view = FeatureView(
        name="carrier_stats",
        entities=[carrier],
        ttl=timedelta(days=7),
        schema=[
            Field(name="carrier", dtype=String),
            Field(name="route", dtype=String),
            Field(name="delay", dtype=Float64),
        ],
        source=FileSource(path=str(root / "carrier_stats.parquet"), timestamp_field="event_timestamp"),
        online=True,
    )
    service = FeatureService(name="carrier_model_v1", features=[view])
    store = FeatureStore(repo_path=str(root))
    store.apply([carrier, view, service])
    store.materialize(T0 - timedelta(hours=1), datetime.now(UTC))
    return root, store


def _model(root) -> str:
    """A tiny booster over the three features, trained with their categories frozen in (as the trainer does)."""
    import xgboost as xgb

    from mlops_provider.lineage import BOOSTER_CATEGORIES_ATTR

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "delay": rng.normal(size=200).astype("float32"),
            "route": pd.Categorical(rng.choice(CATEGORIES["route"], 200), categories=CATEGORIES["route"]),
            "carrier": pd.Categorical(rng.choice(CATEGORIES["carrier"], 200), categories=CATEGORIES["carrier"]),
        }
    )
    booster = xgb.train({"max_depth": 2}, xgb.DMatrix(frame, rng.integers(0, 2, 200), enable_categorical=True), 3)
    booster.set_attr(**{BOOSTER_CATEGORIES_ATTR: json.dumps(CATEGORIES)})
    return save_mlflow_model(booster, root / "model")


def test_offline_training_rows_and_online_features_encode_categories_identically(repo):
    from mlops_provider.operators.feast import training_set_frame
    from mlops_provider.training.evaluation import encode_features

    root, store = repo
    carriers = ["a", "b", "c", "zz"]  # zz: an entity the store has never seen
    entity_df = pd.DataFrame({"carrier": carriers, "event_timestamp": [datetime.now(UTC)] * 4, "label": [0, 1, 0, 1]})
    service = store.get_feature_service("carrier_model_v1")
    joined = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    data, categorical = training_set_frame(joined, ["carrier"], "event_timestamp", FEATURES, "label")
    assert categorical == ["route", "carrier"]  # the String feature and the key stay strings
    assert data["route"].tolist() == ["r2", None, "r9", None]
    offline = encode_features(data, FEATURES, CATEGORIES)

    answer = run_in_serving_python(
        ONLINE, str(root), _model(root), json.dumps(FEATURES), json.dumps(carriers),
        timeout=180, env={"HOME": str(root)}, cwd=str(root),
    )  # fmt: skip
    online = np.array(answer, dtype=float)
    np.testing.assert_array_equal(online, offline.astype(float))  # NaN == NaN here: missing on both sides
    # a: r2 -> 1, a -> 0; b: null route -> missing; c: unseen route and carrier -> missing; zz: unknown entity.
    assert offline[0].tolist() == [1.5, 1.0, 0.0] and np.isnan(offline[2, 1:]).all() and np.isnan(offline[3]).all()
