"""Batch scoring: a window of validated data scored by the registered ``champion``, one partition per day.

The features are joined point in time from the offline store with the champion's own feature service, through
the functions the training set is built with (:func:`~mlops_provider.operators.feast.service_layout`,
:func:`~mlops_provider.operators.feast.historical_features`, :func:`~mlops_provider.operators.feast.training_set_frame`),
and scored through :func:`~mlops_provider.drift.scoring.model_scorer` (the booster's frozen categories, as in the
trainer, the gate, the drift check and the model server). So a row scored here gets the prediction the champion
would give the same row of a training set.

Each day of the window becomes ``<data_root>/batch_scores/<model>/dt=YYYY-MM-DD/data.parquet``, written
atomically: a rerun of the interval replaces its partitions, and each row says which ``model_version`` scored it.

:func:`batch_scoring_operator_class` maps a backend to the operator class when the DAG is built; only ``local``
(in the worker) exists so far.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider import lineage
from mlops_provider.exceptions import MlopsError, SourceDataMissingError
from mlops_provider.operators.feast import _FeastOperator
from mlops_provider.partitions import partition_uri, resolve_dates, safe_segment, zone_uri
from mlops_provider.settings import BATCH_SCORING_BACKENDS
from mlops_provider.trace import BATCH_REQUEST_PREFIX, BATCH_SCORES_ZONE

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook

#: Columns every batch-score row carries besides the entity keys, the timestamp and the predictions.
MODEL_VERSION_COLUMN = "model_version"
REQUEST_ID_COLUMN = "request_id"


def batch_request_id(model_name: str, version: str, day: date, row: int) -> str:
    """Return the request id of one scored row: ``batch-<model>-v<version>-<YYYYMMDD>-<row>``.

    Deterministic (no clock, no try number): a rerun by the same version gives each row the same id.
    """
    return f"{BATCH_REQUEST_PREFIX}{model_name}-v{version}-{day:%Y%m%d}-{row:06d}"


def prediction_columns(scores: np.ndarray) -> dict[str, np.ndarray]:
    """Return the prediction columns of ``scores`` as the model server's prediction log names them.

    Binary: the positive-class probability in ``prediction``; regression: the value. Multiclass (``[n, k]``):
    the arg-max class index in ``prediction`` and each class's probability in ``prediction_class_<k>``.
    """
    import numpy as np

    from mlops_provider.drift.scoring import CLASS_PROBABILITY_PREFIX, PREDICTION_COLUMN

    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 2 and scores.shape[1] > 1:
        columns = {PREDICTION_COLUMN: scores.argmax(axis=1).astype(np.int64)}
        columns.update({f"{CLASS_PROBABILITY_PREFIX}{k}": scores[:, k] for k in range(scores.shape[1])})
        return columns
    return {PREDICTION_COLUMN: scores.reshape(-1)}


def model_feature_names(model: Any) -> list[str]:
    """The feature columns ``model`` was trained on, in its order (the booster's feature names)."""
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    names = list(getattr(booster, "feature_names", None) or [])
    if not names:
        raise MlopsError("The model has no feature names; register models trained by the bundle's trainer.")
    return names


class BatchScoringOperator(_FeastOperator):
    """Score the validated rows of a window of days with the model's ``champion``, in the worker.

    For each day: the validated partition's rows, their features joined point in time with the champion's
    feature service (its lineage tag, else ``feature_service``) exactly as a training set joins them, scored by
    the champion, written to ``<data_root>/batch_scores/<model>/dt=<day>/data.parquet`` with the entity keys, the
    timestamp, the predictions, ``model_version`` and a deterministic ``request_id`` (:func:`batch_request_id`).
    A rerun replaces the partitions atomically. Skips while the model has no champion.

    Returns ``{"model_name", "model_version", "feature_service", "partitions": [{"day", "uri", "rows"}], "rows"}``;
    the outlet asset event carries the same.

    :param model_name: registered model. (templated)
    :param dataset: dataset whose validated rows are scored. (templated)
    :param timestamp_column: event-time column of the dataset (each row's as-of time). (templated)
    :param partition_start: first day, YYYY-MM-DD; empty means the run's date. (templated)
    :param partition_end: last day (inclusive); empty means ``partition_start``. (templated)
    :param feature_service: the service used when the champion's lineage names none. (templated)
    :param alias: registry alias of the version that scores; default ``champion``. (templated)
    :param build_features: rebuild the window's aggregate files first (idempotent), as the training set does.
    :param mlflow_conn_id: MLflow connection. (templated)
    :param feast_conn_id: Feast connection. (templated)
    :param repo_path: feature repository. (templated)
    :param storage_conn_id: connection for ``data_root``. (templated)
    """

    template_fields: Sequence[str] = (
        "model_name",
        "dataset",
        "timestamp_column",
        "partition_start",
        "partition_end",
        "feature_service",
        "alias",
        "mlflow_conn_id",
        "feast_conn_id",
        "repo_path",
        "storage_conn_id",
    )
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        model_name: str,
        dataset: str,
        timestamp_column: str = "event_timestamp",
        partition_start: str = "",
        partition_end: str = "",
        feature_service: str | None = None,
        alias: str = lineage.CHAMPION,
        build_features: bool = True,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.dataset = dataset
        self.timestamp_column = timestamp_column
        self.partition_start = partition_start
        self.partition_end = partition_end
        self.feature_service = feature_service
        self.alias = alias
        self.build_features = build_features
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def mlflow(self) -> MlflowHook:
        """MLflow hook (the registry's alias, lineage tags and the model's artifacts)."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Score every day of the window; see the class docstring for the result."""
        from mlops_provider.drift.scoring import model_scorer
        from mlops_provider.operators.feast import service_layout
        from mlops_provider.storage import storage_path, write_parquet_atomic

        safe_segment(self.dataset, "dataset name")
        zone = zone_uri(self.settings.data_root, BATCH_SCORES_ZONE, self.model_name)
        days = resolve_dates(self.partition_start, self.partition_end, context)
        version = self.mlflow.get_version_by_alias(self.model_name, self.alias)
        if version is None:
            raise AirflowSkipException(
                f"Model {self.model_name!r} has no {self.alias!r} version yet: batch scoring starts once the "
                "training pipeline promotes one."
            )
        version_id = str(version.version)
        service_name = self.mlflow.feature_service_of_version(version) or self.feature_service
        if not service_name:
            raise MlopsError(
                f"{self.model_name} version {version_id} names no feature service in its lineage "
                f"({lineage.FEATURE_SERVICE_TAG}) and the operator was given none; pass feature_service."
            )
        validated = zone_uri(self.settings.data_root, "validated", self.dataset)
        absent = [d.isoformat() for d in days if not storage_path(partition_uri(validated, d), self._conn_id).exists()]
        if absent:  # before anything is written: a window is scored whole or not at all
            raise SourceDataMissingError(
                f"Validated partitions {absent} of {self.dataset} do not exist; run ingestion and validation for the "
                "window before scoring it."
            )
        with tempfile.TemporaryDirectory(prefix="mlops-batch-model-") as workdir:  # the model is read into memory
            model = self.mlflow.load_xgboost_model(self.model_name, version_id, workdir=workdir)
        scorer, features = model_scorer(model), model_feature_names(model)
        store = self.hook.get_feature_store()
        layout = service_layout(store, service_name)
        if self.build_features:
            self._build_aggregates(store, layout.batch_views, days)

        partitions: list[dict[str, Any]] = []
        rows = 0
        for day in days:
            scored = self._score_day(day, store, layout, scorer, features, version_id)
            uri = partition_uri(zone, day)
            write_parquet_atomic(scored, uri, self._conn_id)
            partitions.append({"day": day.isoformat(), "uri": uri, "rows": len(scored)})
            rows += len(scored)
            self.log.info(
                "Scored %d rows of %s dt=%s with %s v%s -> %s",
                len(scored),
                self.dataset,
                day,
                self.model_name,
                version_id,
                uri,
            )
        result: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": version_id,
            "feature_service": service_name,
            "partitions": partitions,
            "rows": rows,
        }
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {**result}
        return result

    def _score_day(
        self, day: date, store: Any, layout: Any, scorer: Any, features: list[str], version: str
    ) -> pd.DataFrame:
        """The scored rows of one validated day, sorted as a training set sorts them."""
        import pandas as pd

        from mlops_provider.drift.scoring import PREDICTION_COLUMN
        from mlops_provider.operators.feast import historical_features, training_set_frame

        events = self._read_validated(self.dataset, day)
        if events is None:
            raise SourceDataMissingError(
                f"Validated partition dt={day} of {self.dataset} does not exist; run ingestion and validation for "
                "the window before scoring it."
            )
        needed = list(dict.fromkeys([*layout.entity_columns, self.timestamp_column, *layout.request_fields]))
        missing = [c for c in needed if c not in events.columns]
        if missing:
            raise MlopsError(
                f"Columns {missing} needed by feature service {layout.service.name} (entity keys, request fields) "
                f"or as the timestamp are not in the validated {self.dataset} data of dt={day}."
            )
        keys = [*layout.entity_columns, self.timestamp_column]
        if events.empty:  # an empty partition still replaces the day's scores: nothing was scored
            scored = events[keys].copy()
            scored[PREDICTION_COLUMN] = pd.Series(dtype="float64")
        else:
            joined = historical_features(store, layout, events[needed], self.timestamp_column)
            rows, _ = training_set_frame(
                joined, layout.entity_columns, self.timestamp_column, features, None, what=layout.service.name
            )
            scored = rows[keys].copy()
            for name, values in prediction_columns(scorer(rows[features])).items():
                scored[name] = values
        scored[MODEL_VERSION_COLUMN] = version
        scored[REQUEST_ID_COLUMN] = [batch_request_id(self.model_name, version, day, i) for i in range(len(scored))]
        return scored


def batch_scoring_operator_class(backend: str | None = None) -> type[BaseOperator]:
    """Return the batch-scoring operator class of ``backend`` (default ``local``), when the DAG is built.

    Only ``local`` exists: the Kubernetes and Dask backends are not written yet, and asking for one fails
    here, at parse time, rather than running somewhere else than asked.
    """
    backend = backend or "local"
    if backend == "local":
        return BatchScoringOperator
    raise MlopsError(
        f"batch scoring backend {backend!r} is not available; choose one of {', '.join(BATCH_SCORING_BACKENDS)}."
    )
