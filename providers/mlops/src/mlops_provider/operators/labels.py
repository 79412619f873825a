"""Delayed labels closing the loop: join them to the prediction log, score the live model, request retraining.

``LabelFeedbackOperator`` runs once per interval (day ``D``, the run's date or ``as_of``):

1. reads the prediction log of ``D - max_delay_days .. D`` (``<data_root>/predictions/<model>/``) and the labels that
   arrived on those days (``<data_root>/labels/<dataset>/dt=<arrival day>/``), and joins them
   (:func:`mlops_provider.drift.labels.join_labels`);
2. writes, per prediction day ``P``, the labeled rows and the live metric per model version with its labeled and
   unlabeled row counts to ``<data_root>/live_performance/<model>/dt=P/`` (``labeled.parquet``, then
   ``metrics.json`` last); each file is replaced atomically, so a re-run of the interval replaces its output,
   and a day last computed with later labels (a later interval's run) is kept, not overwritten with fewer;
3. compares the ``champion``'s live metric over the window with the holdout score its training run logged
   (:func:`mlops_provider.drift.labels.decide`): a drop above the drift policy's ``max_performance_drop``, on at
   least ``min_labeled_rows`` labeled rows, makes the returned verdict ``drift_detected`` with the reason, which
   :func:`mlops_provider.drift.task_group.label_feedback_tasks` turns into the ``drift.<model>`` asset event that
   schedules retraining. Fewer rows: "inconclusive", no event.

Labels for day ``P`` are final once ``P + max_delay_days`` has run: each run re-joins every day of its window
with all the labels that arrived up to ``D``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider import lineage
from mlops_provider.drift.labels import LABELED_ROWS_FILE, LABELS_ZONE, LIVE_PERFORMANCE_ZONE, METRICS_FILE
from mlops_provider.drift.policy import DriftPolicy
from mlops_provider.payloads import parse_payload

if TYPE_CHECKING:
    from datetime import date

    import pandas as pd
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.payloads import LivePerformanceVerdict
    from mlops_provider.settings import MlopsSettings

log = logging.getLogger(__name__)


class LabelFeedbackOperator(BaseOperator):
    """Join delayed labels to the prediction log, record live performance per version and day, judge the champion.

    Returns a verdict (``drift_detected``, ``reasons``, ``model_name``, ``champion_version``, ``window``,
    ``summary_uri``, ``live_performance``: the decision, ``counts``: joined/unlabeled/unmatched rows) that
    :class:`~mlops_provider.operators.evidently.DriftAssetEventOperator` turns into the drift asset event. Skips
    when the model has no ``champion`` or the window has no logged predictions.

    :param model_name: registered model name (templated).
    :param dataset: dataset whose labels zone the labels land in (templated).
    :param label_column: the label column of the labels (templated).
    :param as_of: last day ``YYYY-MM-DD`` of the window (templated); empty: the run's date.
    :param max_delay_days: how many days labels may arrive after their prediction: the window is
        ``as_of - max_delay_days .. as_of`` (templated).
    :param join: ``request_id`` or ``entity_time`` (see :mod:`mlops_provider.drift.labels`).
    :param entity_columns: entity keys of an ``entity_time`` join.
    :param timestamp_column: the labels' event-time column of an ``entity_time`` join.
    :param tolerance_minutes: largest gap between a label's event time and ``served_at`` (``entity_time``).
    :param labels_uri: folder of the label partitions (templated); default ``<data_root>/labels/<dataset>``.
    :param min_labeled_rows: fewest labeled champion rows for a verdict (templated); fewer: "inconclusive".
    :param policy: drift policy, a dict or its JSON (templated); default ``[mlops] drift_policy``. Its
        ``max_performance_drop`` and ``performance_metric`` apply.
    :param alias: alias of the version judged (templated).
    :param mlflow_conn_id: MLflow connection (templated); default ``[mlops] mlflow_conn_id``.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "dataset",
        "label_column",
        "as_of",
        "max_delay_days",
        "labels_uri",
        "min_labeled_rows",
        "policy",
        "alias",
        "mlflow_conn_id",
    )
    ui_color = "#f3e5f5"

    def __init__(
        self,
        *,
        model_name: str,
        dataset: str,
        label_column: str,
        as_of: str | None = None,
        max_delay_days: int | str = 7,
        join: str = "request_id",
        entity_columns: Sequence[str] = (),
        timestamp_column: str | None = None,
        tolerance_minutes: float = 5.0,
        labels_uri: str | None = None,
        min_labeled_rows: int | str = 200,
        policy: dict[str, Any] | str | None = None,
        alias: str = lineage.CHAMPION,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        from mlops_provider.drift.labels import JOIN_KINDS

        super().__init__(**kwargs)
        if join not in JOIN_KINDS:
            raise ValueError(f"join must be one of {', '.join(JOIN_KINDS)}, got {join!r}")
        if join == "entity_time" and not (entity_columns and timestamp_column):
            raise ValueError("an entity_time join needs entity_columns and timestamp_column")
        self.model_name = model_name
        self.dataset = dataset
        self.label_column = label_column
        self.as_of = as_of
        self.max_delay_days = max_delay_days
        self.join = join
        self.entity_columns = list(entity_columns)
        self.timestamp_column = timestamp_column
        self.tolerance_minutes = tolerance_minutes
        self.labels_uri = labels_uri
        self.min_labeled_rows = min_labeled_rows
        self.policy = policy
        self.alias = alias
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        """MLflow hook (the champion, its task and its holdout metrics)."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Context) -> LivePerformanceVerdict:
        """Join, record and judge; see the class docstring for the returned verdict."""
        from mlops_provider.drift.labels import PREDICTION_DAY, daily_live_performance, decide, join_labels, live_metric
        from mlops_provider.drift.scoring import holdout_reference
        from mlops_provider.partitions import context_date, resolve_dates
        from mlops_provider.settings import get_settings
        from mlops_provider.storage import write_bytes_atomic

        settings = get_settings()
        policy = DriftPolicy.from_dict(
            parse_payload(self.policy, name="policy", required=False) or settings.drift_policy
        )
        end = resolve_dates(self.as_of or context_date(context), None)[0]
        start = end - timedelta(days=int(self.max_delay_days))
        min_rows = int(self.min_labeled_rows)

        champion = self.hook.get_version_by_alias(self.model_name, self.alias)
        if champion is None:
            raise AirflowSkipException(
                f"Model {self.model_name!r} has no {self.alias!r} version yet: there is no live model to judge."
            )
        champion_version = str(champion.version)
        predictions = self._predictions(settings.data_root, start, end)
        if predictions.empty:
            raise AirflowSkipException(
                f"No predictions of {self.model_name} logged between {start} and {end}: no labels to join."
            )
        labels = self._labels(settings, resolve_dates(start, end))
        task = (champion.tags or {}).get(lineage.TASK_TAG) or lineage.BINARY
        metric, reference = holdout_reference(
            task, self.hook.run_metrics(str(champion.run_id)), policy.performance_metric
        )
        classes = self._classes(champion_version) if task == lineage.MULTICLASS else None
        joined = join_labels(
            predictions,
            labels,
            label=self.label_column,
            join=self.join,
            entity_columns=self.entity_columns,
            timestamp_column=self.timestamp_column,
            tolerance=timedelta(minutes=float(self.tolerance_minutes)),
        )
        records = daily_live_performance(
            predictions, joined, label=self.label_column, task=task, metric=metric, classes=classes
        )
        zone = settings.zone_uri(LIVE_PERFORMANCE_ZONE, self.model_name)
        for day in sorted({r["day"] for r in records}):
            self._write_day(
                zone, day, joined.rows[joined.rows[PREDICTION_DAY] == day], [r for r in records if r["day"] == day], end
            )

        mine = joined.rows[joined.rows["model_version"].astype(str) == champion_version]
        live = live_metric(mine, label=self.label_column, task=task, metric=metric, classes=classes)
        decision = decide(
            model_version=champion_version,
            metric=metric,
            reference=reference,
            live=live,
            labeled_rows=len(mine),
            min_rows=min_rows,
            max_drop=policy.max_performance_drop,
        )
        window = [start.isoformat(), end.isoformat()]
        summary_uri = f"{settings.data_root.rstrip('/')}/reports/{LIVE_PERFORMANCE_ZONE}/{self.model_name}/{end}.json"
        summary = {
            "model_name": self.model_name,
            "dataset": self.dataset,
            "window": window,
            "join": self.join,
            "champion_version": champion_version,
            "decision": decision.to_dict(),
            "counts": joined.counts(),
            "daily": records,
            "policy": policy.to_dict(),
            "dag_id": context["ti"].dag_id,
            "run_id": context["ti"].run_id,
        }
        write_bytes_atomic(json.dumps(summary, indent=2, default=str).encode(), summary_uri)
        log.info(
            "Live performance of %s v%s over %s..%s: %s. Joined %s.",
            self.model_name,
            champion_version,
            start,
            end,
            decision.reason,
            joined.counts(),
        )
        return {
            "drift_detected": decision.exceeds,
            "reasons": [decision.reason] if decision.exceeds else [],
            "model_name": self.model_name,
            "model_version": champion_version,
            "champion_version": champion_version,
            "window": window,
            "summary_uri": summary_uri,
            "live_performance": decision.to_dict(),
            "counts": joined.counts(),
        }

    def _predictions(self, data_root: str, start: date, end: date) -> pd.DataFrame:
        from mlops_provider.names import zone_uri
        from mlops_provider.operators.evidently import PREDICTIONS_ZONE
        from mlops_provider.partitions import read_window

        return read_window(zone_uri(data_root, PREDICTIONS_ZONE, self.model_name), start, end).frame

    def _labels(self, settings: MlopsSettings, days: list[date]) -> pd.DataFrame:
        """The labels that arrived on ``days``, oldest arrival first, each row with its arrival day."""
        import pandas as pd

        from mlops_provider.drift.labels import ARRIVED_ON, REQUEST_ID
        from mlops_provider.partitions import list_source_files, partition_folder, read_source_file
        from mlops_provider.storage import storage_path

        zone = self.labels_uri or settings.zone_uri(LABELS_ZONE, self.dataset)
        frames = []
        for day in days:
            for file in list_source_files(storage_path(partition_folder(zone, day))) or []:
                frames.append(read_source_file(file).to_pandas().assign(**{ARRIVED_ON: day.isoformat()}))
        if frames:
            return pd.concat(frames, ignore_index=True)
        keys = [REQUEST_ID] if self.join == "request_id" else [*self.entity_columns, str(self.timestamp_column)]
        return pd.DataFrame(columns=[*keys, self.label_column, ARRIVED_ON])

    def _classes(self, version: str) -> list | None:
        """A multiclass model's class labels, in the order of its logged probabilities (from the model file)."""
        import tempfile

        from mlops_provider.drift.scoring import model_classes

        with tempfile.TemporaryDirectory() as workdir:
            return model_classes(self.hook.load_xgboost_model(self.model_name, version, workdir=workdir))

    def _write_day(self, zone: str, day: str, rows: pd.DataFrame, records: list[dict[str, Any]], end: date) -> None:
        """Replace one prediction day's labeled rows and metrics, unless a later interval already computed it."""
        from datetime import date as date_type

        from mlops_provider.partitions import partition_uri
        from mlops_provider.storage import storage_path, write_bytes_atomic, write_parquet_atomic

        prediction_day = date_type.fromisoformat(day)
        metrics_uri = partition_uri(zone, prediction_day, METRICS_FILE)
        existing = storage_path(metrics_uri)
        if existing.exists():
            labels_through = json.loads(existing.read_text()).get("labels_through", "")
            if labels_through > end.isoformat():
                log.info("Kept %s: computed with labels through %s, later than %s.", metrics_uri, labels_through, end)
                return
        write_parquet_atomic(rows.reset_index(drop=True), partition_uri(zone, prediction_day, LABELED_ROWS_FILE))
        payload = {"day": day, "labels_through": end.isoformat(), "versions": records}
        write_bytes_atomic(json.dumps(payload, indent=2).encode(), metrics_uri)
