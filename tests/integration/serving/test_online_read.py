"""The direct SQLite read of the feature lookup answers exactly what Feast's ``get_online_features`` answers.

A private Feast repository in the serving environment (SQLite online store, two feature views: one keyed by an
INT64 entity with a TTL, one by a compound INT64 + STRING key), rows written through Feast's own
``write_to_online_store``: fresh, expired (older than the view's TTL), with a null value, and entities never
written. Each path of :class:`~mlops_serving.online_features.OnlineFeatures` (the direct ``SELECT``, Feast's
``online_read`` used for other online stores, and ``get_online_features``) must return the same raw values.
"""

from __future__ import annotations

import pytest

from tests.serving_support import run_in_serving_python

pytestmark = pytest.mark.integration

LOOKUP = """
import json, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, RepoConfig, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String
from feast.value_type import ValueType
from kserve.errors import InvalidInput

from mlops_serving.online_features import OnlineFeatures

root = Path(sys.argv[1])
now = datetime.now(UTC).replace(microsecond=0)
account = Entity(name="account", join_keys=["account_id"], value_type=ValueType.INT64)
region = Entity(name="region", join_keys=["region"], value_type=ValueType.STRING)
frames = {
    "balances": pd.DataFrame({"account_id": [0], "balance": [0.0], "tier": ["x"], "visits": [0],
                              "event_timestamp": [now]}),
    "regional": pd.DataFrame({"account_id": [0], "region": ["x"], "regional_spend": [0.0], "event_timestamp": [now]}),
}
for name, frame in frames.items():
    frame.to_parquet(root / f"{name}.parquet")
balances = FeatureView(
    name="balances", entities=[account], ttl=timedelta(hours=1),
    schema=[Field(name="balance", dtype=Float64), Field(name="tier", dtype=String), Field(name="visits", dtype=Int64)],
    source=FileSource(path=str(root / "balances.parquet"), timestamp_field="event_timestamp"),
)
regional = FeatureView(
    name="regional", entities=[account, region], ttl=timedelta(days=7),
    schema=[Field(name="regional_spend", dtype=Float64)],
    source=FileSource(path=str(root / "regional.parquet"), timestamp_field="event_timestamp"),
)
call = RequestSource(name="call", schema=[Field(name="amount", dtype=Float64)])


@on_demand_feature_view(sources=[balances, call], schema=[Field(name="share", dtype=Float64)], mode="python")
def shares(inputs):  # a batch: one list per input
    return {"share": [None if b is None else a / (b + 1.0) for a, b in zip(inputs["amount"], inputs["balance"])]}


@on_demand_feature_view(sources=[balances, call], schema=[Field(name="large", dtype=Int64)], mode="python",
                        singleton=True)
def large(inputs):  # one row at a time; reads its source under the view's name
    return {"large": int(inputs["amount"] > 3 and (inputs["balances__visits"] or 0) > 2)}


service = FeatureService(name="scoring", features=[balances, regional, shares, large])
store = FeatureStore(config=RepoConfig(
    project="direct", provider="local", registry=str(root / "registry.db"),
    online_store={"type": "sqlite", "path": str(root / "online.db")}, entity_key_serialization_version=3,
))
store.apply([account, region, balances, regional, shares, large, service])
fresh, expired = now - timedelta(minutes=10), now - timedelta(days=2)
store.write_to_online_store("balances", pd.DataFrame({
    "account_id": [1, 2, 3], "balance": [10.5, 20.25, None], "tier": ["gold", "silver", "gold"],
    "visits": [3, 7, 1], "event_timestamp": [fresh, expired, fresh],
}))
store.write_to_online_store("regional", pd.DataFrame({
    "account_id": [1, 2], "region": ["eu", "us"], "regional_spend": [1.5, 2.5], "event_timestamp": [fresh, fresh],
}))

def lookup(reject):
    return OnlineFeatures(store, "scoring", ["balance", "tier", "visits", "regional_spend", "share", "large"],
                          {"tier": {"gold": 0, "silver": 1}}, reject_unknown_entities=reject)

# Present, expired, a null value, a never-written account (4) and a never-written compound key (3, "eu").
rows = [{"account_id": a, "region": r, "amount": float(a) * 2}
        for a, r in ((1, "eu"), (2, "us"), (3, "eu"), (4, "eu"), (1, "eu"), (2, "eu"))]
online = lookup(reject=False)
assert online.indirect_reason is None, online.indirect_reason
direct_reader = online.direct_reader
assert direct_reader is not None
statements = []
direct_reader.connection().set_trace_callback(statements.append)

def columns():
    direct = online._read(rows, online.entity_rows(rows))
    online.direct_reader = None  # Feast's own online_read: the path of every other online store
    through_online_read = online._read(rows, online.entity_rows(rows))
    online.direct_reader = direct_reader
    feast = online._read_through_feast(rows, online.entity_rows(rows))
    return {"direct": direct, "online_read": through_online_read, "get_online_features": feast}

selects = lambda: [s for s in statements if s.lstrip().upper().startswith("SELECT")]
selects_per_lookup = []
before = columns()
selects_per_lookup.append(len(selects()))
nan = lambda m: [[None if v != v else float(v) for v in row] for row in m.tolist()]
matrices = {"direct": nan(online.matrix(rows))}  # the same entities again: kept, nothing selected
selects_per_lookup.append(len(selects()))
online.indirect_reason = "reference"
try:
    online.matrix(rows)
except Exception as error:  # Feast answers a singleton view for the first row only: refused, never broadcast
    matrices["get_online_features"] = f"{type(error).__name__}: {error}"
single = nan(online.matrix(rows[1:2]))  # one instance: Feast's answer is complete
online.indirect_reason = None
matrices["single"] = {"direct": nan(online.matrix(rows[1:2])), "get_online_features": single}
# A new materialization: the long-lived connection reads the new row at once.
store.write_to_online_store("balances", pd.DataFrame({
    "account_id": [1], "balance": [99.0], "tier": ["silver"], "visits": [4], "event_timestamp": [now],
}))
after = columns()
selects_per_lookup.append(len(selects()))
direct_reader.max_entities = 0  # nothing kept: every read selects, and answers the same
uncached = online._read(rows, online.entity_rows(rows))
selects_per_lookup.append(len(selects()))
errors = {}
strict = lookup(reject=True)
for path, reason in (("direct", None), ("get_online_features", "reference")):
    strict.indirect_reason = reason
    try:
        strict.matrix(rows)
    except InvalidInput as error:
        errors[path] = str(error)
print(json.dumps({"before": before, "after": after, "matrices": matrices, "errors": errors, "uncached": uncached,
                  "selects": selects(), "selects_per_lookup": selects_per_lookup}))
"""


@pytest.fixture(scope="module")
def lookups(tmp_path_factory):
    return run_in_serving_python(LOOKUP, str(tmp_path_factory.mktemp("online_read")))


def test_the_direct_read_returns_what_get_online_features_returns(lookups):
    for moment in ("before", "after"):
        paths = {path: dict(columns) for path, columns in lookups[moment].items()}  # the fixture stays whole
        # Feast's get_online_features computes a singleton on-demand view for the first row only: one value for
        # the batch. The lookup (direct or through online_read) computes it per row; everything else is the same.
        assert paths["get_online_features"].pop("large") == [0], moment
        assert paths["direct"].pop("large") == paths["online_read"].pop("large") == [0, 1, 0, 0, 0, 1], moment
        assert paths["direct"] == paths["get_online_features"], moment
        assert paths["online_read"] == paths["get_online_features"], moment
    before = lookups["before"]["direct"]
    # Present; expired (Feast's online path applies no TTL: still served); a null value; never written.
    assert before["balance"] == [10.5, 20.25, None, None, 10.5, 20.25]
    assert before["tier"] == ["gold", "silver", "gold", None, "gold", "silver"]
    assert before["visits"] == [3, 7, 1, None, 3, 7]
    assert before["regional_spend"] == [1.5, 2.5, None, None, 1.5, None]
    # The batch on-demand view as Feast's transform_dict computes it.
    assert before["share"] == [2 / 11.5, 4 / 21.25, None, None, 2 / 11.5, 4 / 21.25]
    matrices = lookups["matrices"]
    assert matrices["single"]["direct"] == matrices["single"]["get_online_features"]
    assert [row[-1] for row in matrices["direct"]] == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    # A batch whose singleton view Feast answers for one row is refused with the reason, never broadcast.
    assert matrices["get_online_features"].startswith("InferenceError: The feature lookup answered 1 value(s) of")


def test_the_direct_read_sees_a_new_materialization_at_once(lookups):
    after = lookups["after"]["direct"]
    assert after["balance"][0] == after["balance"][4] == 99.0
    assert after["tier"][0] == "silver"
    assert after["balance"][1] == 20.25  # the other accounts unchanged


def test_one_select_per_view_per_batch_and_the_same_unknown_entity_error(lookups):
    # Two views: one SELECT each for the six rows' distinct entities; the same entities again are kept (nothing
    # selected) until another connection commits (the new materialization: both views selected again).
    assert lookups["selects_per_lookup"] == [2, 2, 4, 6], lookups["selects"]
    assert [s.count("x'") for s in lookups["selects"][:2]] == [4, 5]  # 4 accounts; 5 (account, region) pairs
    assert lookups["uncached"] == lookups["after"]["direct"]
    assert lookups["errors"]["direct"] == lookups["errors"]["get_online_features"]
    assert "unknown entity in instance 3" in lookups["errors"]["direct"].lower()
