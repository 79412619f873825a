"""The drift check rebuilds features as of the training-set manifest's own timestamp column."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd


class _Store:
    """A feature store that records the entity rows of the point-in-time join."""

    def __init__(self) -> None:
        self.entity_df: pd.DataFrame | None = None

    def get_feature_service(self, name):
        return SimpleNamespace(name=name, feature_view_projections=[])

    def list_on_demand_feature_views(self):
        return []

    def get_historical_features(self, entity_df, features):
        self.entity_df = entity_df
        joined = entity_df.assign(entity_score=[0.5] * len(entity_df))
        return SimpleNamespace(to_df=lambda: joined)


def test_rebuild_joins_on_the_manifest_timestamp_column_not_a_default_name():
    from mlops_provider.drift.features import rebuild_features

    current = pd.DataFrame(
        {"entity_id": [1, 2], "label_time": pd.to_datetime(["2026-11-01T10:00", "2026-11-02T11:00"], utc=True)}
    )
    manifest = {"feature_service": "svc", "entity_columns": ["entity_id"], "timestamp_column": "label_time"}
    store = _Store()
    rebuilt = rebuild_features(current, manifest, ["entity_score"], store=store)
    assert rebuilt is not None and list(rebuilt["entity_score"]) == [0.5, 0.5]
    assert store.entity_df is not None
    assert list(store.entity_df["label_time"]) == list(current["label_time"])
    # Feast reads the as-of time from its own column, filled from the manifest's.
    assert list(store.entity_df["event_timestamp"]) == list(current["label_time"])
