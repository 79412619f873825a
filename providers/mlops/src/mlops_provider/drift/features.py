"""Rebuild a model's Feast features for the current window, the way its training set was built.

A training set built from a Feast feature service has features the validated zone lacks (aggregates,
on-demand features). To compare like with like, the current window's entity keys and timestamps (plus
the request fields of on-demand views) are joined point-in-time against the same feature service.
Feast is imported through :class:`~mlops_provider.hooks.feast.FeastHook` when a rebuild runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Timestamp column of a training-set manifest that names none.
DEFAULT_TIMESTAMP_COLUMN = "event_timestamp"


def request_fields(store: Any, service: Any) -> list[str]:
    """Return the request-source fields the on-demand views of ``service`` need, in first-seen order."""
    odfv_names = {v.name for v in store.list_on_demand_feature_views()}
    fields: list[str] = []
    for projection in service.feature_view_projections:
        if projection.name in odfv_names:
            odfv = store.get_on_demand_feature_view(projection.name)
            for source in odfv.source_request_sources.values():
                fields += [f.name for f in source.schema if f.name not in fields]
    return fields


def rebuild_features(
    current: pd.DataFrame,
    manifest: dict[str, Any],
    missing: list[str],
    *,
    feast_conn_id: str | None = None,
    store: Any = None,
) -> pd.DataFrame | None:
    """Return the current rows with the training set's features, from the feature service it was built with.

    :param current: the current window's rows (entity keys, timestamps, request fields, maybe the label).
    :param manifest: the training set's manifest (``feature_service``, ``entity_columns``,
        ``timestamp_column``, ``label_column``).
    :param missing: the features ``current`` lacks (for the log messages).
    :param feast_conn_id: Feast connection, when ``store`` is not given.
    :param store: a ``FeatureStore`` (default: the one of ``feast_conn_id``).
    :return: the joined rows, or None (logged with the reason) when the features cannot be rebuilt.
    """
    import pandas as pd

    service_name = manifest.get("feature_service")
    timestamp = manifest.get("timestamp_column") or DEFAULT_TIMESTAMP_COLUMN
    if not service_name:
        log.info("Training-set manifest names no feature_service; features %s cannot be rebuilt.", missing)
        return None
    try:
        if store is None:
            from mlops_provider.hooks.feast import FeastHook

            store = FeastHook(feast_conn_id=feast_conn_id).get_feature_store()
        service = store.get_feature_service(service_name)
        keep = [*(manifest.get("entity_columns") or []), timestamp, *request_fields(store, service)]
        label = manifest.get("label_column")
        if label and label in current.columns:
            keep.append(label)
        keep = list(dict.fromkeys(c for c in keep if c in current.columns))
        entity_df = current[keep].copy()
        # Feast's point-in-time join key; the manifest's timestamp column may have another name.
        entity_df[DEFAULT_TIMESTAMP_COLUMN] = pd.to_datetime(entity_df[timestamp], utc=True)
        joined = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    except Exception as err:  # the request log may still have them; say why Feast did not
        log.warning(
            "Features %s not rebuilt with Feast service %s: %s: %s", missing, service_name, type(err).__name__, err
        )
        return None
    absent = [c for c in missing if c not in joined.columns]
    if absent:
        log.warning("Feast service %s did not return %s.", service_name, absent)
    return joined.reset_index(drop=True)
