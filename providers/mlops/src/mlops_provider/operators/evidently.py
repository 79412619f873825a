"""Drift checks of a served model against its training data, with Evidently reports.

``EvidentlyDriftCheckOperator`` orchestrates one check:

1. the ``champion`` version and its training set, through the MLflow lineage the trainer records
   (:meth:`~mlops_provider.hooks.mlflow.MlflowHook.training_set_of_run`);
2. the current window of validated data and the endpoint's request log
   (:func:`mlops_provider.partitions.read_window`), with the model's Feast features rebuilt when the
   validated zone lacks them (:mod:`mlops_provider.drift.features`);
3. the verdict (:func:`mlops_provider.drift.check.check_drift`, Evidently's default tests on every row,
   the drift policy on top), scoring the champion loaded through its xgboost flavour;
4. the Evidently HTML report on a sample, with the verdict's columns and tests
   (:mod:`mlops_provider.drift.report`), a JSON summary under ``<data_root>/reports/drift/<model>/<run_ts>/``
   and a run of the ``<model>-monitoring`` MLflow experiment.

``DriftAssetEventOperator`` emits the drift asset event, carrying the verdict in its ``extra``, only
when the verdict exceeds the drift policy; otherwise it skips, and a skipped task emits nothing.
``DriftAlertOperator`` sends the alert. :func:`mlops_provider.drift.task_group.drift_check_tasks` wires
all three into a DAG.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider import lineage
from mlops_provider.audit import RETRAINING_TRIGGER, record_audit
from mlops_provider.drift.engine import DriftConfig
from mlops_provider.drift.policy import DriftPolicy
from mlops_provider.exceptions import DriftReferenceMissingError
from mlops_provider.links.evidently import EvidentlyReportLink, api_base_url
from mlops_provider.payloads import parse_payload

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Asset, Context
    from mlflow.entities.model_registry import ModelVersion

    from mlops_provider.drift.report import DriftReport
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.payloads import DriftVerdict, TrainingSetManifest
    from mlops_provider.settings import MlopsSettings

log = logging.getLogger(__name__)

MONITORING_EXPERIMENT_SUFFIX = "-monitoring"
#: ``lineage.RUN_KIND_TAG`` of the monitoring runs.
DRIFT_CHECK_RUN_KIND = "drift_check"
#: Zone of the endpoint's request log (``<data_root>/predictions/<model>/dt=.../*.parquet``).
PREDICTIONS_ZONE = "predictions"
#: Keys of the verdict that travel with the drift asset event and the alert.
EVENT_KEYS = (
    "model_name",
    "champion_version",
    "drift_share",
    "drifted_features",
    "reasons",
    "report_uri",
    "summary_uri",
    "reference_uri",
    "mlflow_run_id",
    "window",
    "live_performance",  # set when delayed labels (LabelFeedbackOperator) found the drop
)
ALERT_KEYS = ("champion_version", "drift_share", "drifted_features", "reasons", "report_uri", "mlflow_run_id")


class EvidentlyDriftCheckOperator(BaseOperator):
    """Check a model's current data for drift against the training set of its ``champion`` version.

    Returns a :class:`~mlops_provider.payloads.DriftVerdict`: ``drift_detected`` means "exceeds the drift
    policy" (see :class:`~mlops_provider.drift.policy.DriftPolicy`) and ``reasons`` says why; with
    ``drift_share``, ``drifted_features``, ``report_uri``, ``summary_uri``, ``reference_uri``,
    ``champion_version``, ``mlflow_run_id``. Skips (``AirflowSkipException``) when the model has no
    ``champion`` yet or the window has no data.

    :param model_name: registered model name (templated).
    :param dataset: dataset whose validated zone is the current data (templated).
    :param current_start: first day ``YYYY-MM-DD`` of the current window (templated).
    :param current_end: last day of the current window (templated).
    :param alias: alias of the version to check (templated).
    :param mlflow_conn_id: MLflow connection (templated); default ``[mlops] mlflow_conn_id``.
    :param drift_tests: per-feature tests/thresholds, Evidently's preset argument names, as a dict or its
        JSON (templated); default ``[mlops] drift_tests``. See :class:`~mlops_provider.drift.engine.DriftConfig`.
    :param policy: drift policy, a dict or its JSON (templated); default ``[mlops] drift_policy``.
    :param columns: features to check; default the training set's ``feature_columns``.
    :param report_sample_rows: rows per side in the HTML report; default ``[mlops] drift_report_sample_rows``.
    :param include_predictions: also check drift of the predictions the endpoint logged.
    :param feast_conn_id: Feast connection used to compute the model's features for the current window
        when the validated zone lacks them (aggregates, on-demand features) (templated); default
        ``[mlops] feast_conn_id``.
    """

    template_fields: Sequence[str] = (
        "model_name",
        "dataset",
        "current_start",
        "current_end",
        "alias",
        "mlflow_conn_id",
        "feast_conn_id",
        "drift_tests",
        "policy",
    )
    operator_extra_links = (EvidentlyReportLink(),)
    ui_color = "#f3e5f5"

    def __init__(
        self,
        *,
        model_name: str,
        dataset: str,
        current_start: str,
        current_end: str,
        alias: str = lineage.CHAMPION,
        mlflow_conn_id: str | None = None,
        drift_tests: dict[str, Any] | str | None = None,
        policy: dict[str, Any] | str | None = None,
        columns: list[str] | None = None,
        report_sample_rows: int | None = None,
        include_predictions: bool = True,
        feast_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.dataset = dataset
        self.current_start = current_start
        self.current_end = current_end
        self.alias = alias
        self.mlflow_conn_id = mlflow_conn_id
        self.feast_conn_id = feast_conn_id
        self.drift_tests = drift_tests
        self.policy = policy
        self.columns = columns
        self.report_sample_rows = report_sample_rows
        self.include_predictions = include_predictions

    @cached_property
    def hook(self) -> MlflowHook:
        """MLflow hook (registry, lineage, model loading, monitoring runs)."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    # -- lineage -----------------------------------------------------------------------------------

    def _champion(self) -> ModelVersion:
        version = self.hook.get_version_by_alias(self.model_name, self.alias)
        if version is None:
            raise AirflowSkipException(
                f"Model {self.model_name!r} has no {self.alias!r} version yet, so there is nothing to compare: "
                "the drift check starts once the training pipeline promotes a version."
            )
        return version

    def _reference(self, version: ModelVersion) -> tuple[str, TrainingSetManifest]:
        """Return the version's training-set URI and manifest, from the lineage its training run recorded."""
        from mlops_provider.storage import storage_path

        run_id = version.run_id
        if not run_id:
            raise DriftReferenceMissingError(
                f"{self.model_name} version {version.version} has no MLflow run, so its training set is unknown; "
                f"register versions from a training run that tags {lineage.TRAINING_SET_URI_TAG}.",
                model_name=self.model_name,
                version=str(version.version),
            )
        uri, manifest = self.hook.training_set_of_run(run_id)
        if not uri:
            raise DriftReferenceMissingError(
                f"Run {run_id} of {self.model_name} version {version.version} has neither a "
                f"{lineage.TRAINING_SET_URI_TAG} tag nor a {lineage.TRAINING_SET_MANIFEST_ARTIFACT} artifact with "
                "a 'uri'; the drift reference cannot be found. Retrain with the bundle's training operators, "
                "which record this lineage.",
                model_name=self.model_name,
                version=str(version.version),
                run_id=run_id,
            )
        if not storage_path(uri).exists():
            raise DriftReferenceMissingError(
                f"The training set {uri} of {self.model_name} version {version.version} (run {run_id}) no longer "
                "exists; restore it or promote a model whose training set is kept.",
                model_name=self.model_name,
                version=str(version.version),
                run_id=run_id,
            )
        return uri, cast("TrainingSetManifest", manifest)

    # -- data --------------------------------------------------------------------------------------

    def _predictions(self, settings: MlopsSettings, champion_version: str) -> pd.DataFrame:
        """The endpoint's request log for the window, limited to the champion's requests."""
        import pandas as pd

        from mlops_provider.partitions import read_window

        if not self.include_predictions:
            return pd.DataFrame()
        zone = f"{settings.data_root.rstrip('/')}/{PREDICTIONS_ZONE}/{self.model_name}"
        predictions = read_window(zone, self.current_start, self.current_end).frame
        if not predictions.empty and "model_version" in predictions.columns:
            predictions = predictions[predictions["model_version"].astype(str) == champion_version]
        return predictions

    def _features(self, manifest: TrainingSetManifest, reference: pd.DataFrame, champion_version: str) -> list[str]:
        label = manifest.get("label_column")
        features = list(self.columns or manifest.get("feature_columns") or [])
        if not features:
            excluded = {label, manifest.get("timestamp_column"), *(manifest.get("entity_columns") or [])}
            features = [c for c in reference.columns if c not in excluded]
        missing = [c for c in features if c not in reference.columns]
        if missing:
            raise DriftReferenceMissingError(
                f"Training set {manifest.get('uri')} lacks the feature columns {missing}.",
                model_name=self.model_name,
                version=champion_version,
            )
        return features

    # -- main --------------------------------------------------------------------------------------

    def execute(self, context: Context) -> DriftVerdict:
        """Run the check; see the class docstring for the returned verdict."""
        from mlops_provider.drift.check import check_drift, round_share, split_features
        from mlops_provider.drift.features import rebuild_features
        from mlops_provider.drift.report import build_drift_report
        from mlops_provider.drift.scoring import lazy_scorer
        from mlops_provider.partitions import read_window
        from mlops_provider.settings import get_settings
        from mlops_provider.storage import read_parquet, write_bytes_atomic

        settings = get_settings()
        config = DriftConfig.from_dict(
            parse_payload(self.drift_tests, name="drift_tests", required=False) or settings.drift_tests
        )
        policy = DriftPolicy.from_dict(
            parse_payload(self.policy, name="policy", required=False) or settings.drift_policy
        )
        sample_rows = self.report_sample_rows or settings.drift_report_sample_rows

        version = self._champion()
        champion_version = str(version.version)
        reference_uri, manifest = self._reference(version)
        reference = read_parquet(reference_uri)
        validated_zone = settings.zone_uri("validated", self.dataset)
        current, days = read_window(validated_zone, self.current_start, self.current_end)
        if current.empty:
            raise AirflowSkipException(
                f"No validated {self.dataset} data between {self.current_start} and {self.current_end} "
                f"under {validated_zone}: nothing to compare."
            )
        predictions = self._predictions(settings, champion_version)
        features = self._features(manifest, reference, champion_version)

        # Features the validated zone lacks (aggregates, on-demand features) are rebuilt for the current
        # rows with the training set's Feast feature service; failing that, the check reads them from the
        # request log, which holds exactly the model's inputs.
        missing_in_current = [c for c in features if c not in current.columns]
        features_source = "validated"
        if missing_in_current:
            rebuilt = rebuild_features(current, dict(manifest), missing_in_current, feast_conn_id=self.feast_conn_id)
            if rebuilt is not None and len(rebuilt):
                current = rebuilt
                features_source = f"feast:{manifest.get('feature_service')}"
        sources = split_features(features, current, predictions)
        if not sources.current and not sources.prediction_log:
            raise DriftReferenceMissingError(
                f"None of the features {features} of {self.model_name} v{champion_version} is in the validated "
                f"{self.dataset} data or the prediction log of {self.current_start}..{self.current_end}.",
                model_name=self.model_name,
                version=champion_version,
            )

        result = check_drift(
            reference,
            current,
            features=features,
            config=config,
            policy=policy,
            predictions=predictions,
            label=manifest.get("label_column"),
            scorer=lazy_scorer(self._model_loader(champion_version)),
            # The performance reference: what the training run measured on its holdout window.
            holdout_metrics=self.hook.run_metrics(str(version.run_id)),
        )

        run_ts = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        report_dir = f"{settings.data_root.rstrip('/')}/reports/drift/{self.model_name}/{run_ts}"
        report_uri, summary_uri = f"{report_dir}/report.html", f"{report_dir}/summary.json"
        report = build_drift_report(
            result,
            reference,
            current,
            predictions,
            sample_rows=sample_rows,
            title=f"Data drift of {self.model_name} v{champion_version}, {self.current_start}..{self.current_end}",
        )
        write_bytes_atomic(report.html.encode(), report_uri)

        verdict = result.to_payload()
        summary: dict[str, Any] = {
            "model_name": self.model_name,
            "dataset": self.dataset,
            "run_ts": run_ts,
            "checked_at": dt.datetime.now(dt.UTC).isoformat(),
            "dag_id": context["ti"].dag_id,
            "run_id": context["ti"].run_id,
            "window": {"start": self.current_start, "end": self.current_end, "days_with_data": days},
            "champion_version": champion_version,
            "alias": self.alias,
            "reference_uri": reference_uri,
            "reference_hash": manifest.get("hash"),
            "features_source": features_source,
            **result.summary(),
            "policy": policy.to_dict(),
            "report_uri": report_uri,
            "report_sample_rows": sample_rows,
            "report": report.summary(),
            "summary_uri": summary_uri,
        }
        summary.update(self._log_run(summary, report))
        write_bytes_atomic(json.dumps(summary, indent=2, default=str).encode(), summary_uri)
        EvidentlyReportLink.persist(context, base_url=api_base_url(), model_name=self.model_name, run_ts=run_ts)
        log.info(
            "Drift check of %s v%s: %d/%d features drifted (share %s); exceeds policy: %s %s. %s Report: %s",
            self.model_name,
            champion_version,
            len(result.drifted_features),
            len(result.features),
            round_share(result.drift_share),
            result.drift_detected,
            list(result.reasons),
            report.note(),
            report_uri,
        )
        return {
            **verdict,
            "model_name": self.model_name,
            "model_version": champion_version,
            "champion_version": champion_version,
            "current_start": self.current_start,
            "current_end": self.current_end,
            "window": [self.current_start, self.current_end],
            "report_uri": report_uri,
            "summary_uri": summary_uri,
            "reference_uri": reference_uri,
            "mlflow_run_id": summary["mlflow_run_id"],
            "run_ts": run_ts,
        }

    def _model_loader(self, version: str) -> Callable[[], Any]:
        """Return a function that loads the champion (xgboost flavour) for scoring."""

        def load() -> Any:
            with tempfile.TemporaryDirectory() as workdir:  # the model is in memory once loaded
                return self.hook.load_xgboost_model(self.model_name, version, workdir=workdir)

        return load

    def _log_run(self, summary: dict[str, Any], report: DriftReport) -> dict[str, Any]:
        """Log the check as a run of the ``<model>-monitoring`` experiment; return its ids and URL."""
        metrics: dict[str, float] = {
            "drift_share": float(summary["drift_share"]),
            "drifted_features": float(len(summary["drifted_features"])),
            "drift_detected": float(summary["drift_detected"]),
        }
        metrics |= {f"drift_score.{c['column']}": float(c["score"]) for c in summary["features"]}
        if summary["performance"] and summary["performance"].get("drop") is not None:
            metrics["performance_drop"] = float(summary["performance"]["drop"])
        tags = {
            lineage.RUN_KIND_TAG: DRIFT_CHECK_RUN_KIND,
            "model_name": self.model_name,
            "model_version": summary["champion_version"],
            lineage.DATASET_TAG: self.dataset,
            lineage.WINDOW_START_TAG: self.current_start,
            lineage.WINDOW_END_TAG: self.current_end,
            lineage.TRAINING_SET_URI_TAG: summary["reference_uri"],
            "drift_detected": str(summary["drift_detected"]).lower(),
            "report_uri": summary["report_uri"],
        }
        with tempfile.TemporaryDirectory() as tmp:
            html_path = Path(tmp) / "report.html"
            html_path.write_text(report.html)
            experiment_id, run_id = self.hook.log_run(
                f"{self.model_name}{MONITORING_EXPERIMENT_SUFFIX}",
                run_name=f"drift-{summary['run_ts']}",
                tags=tags,
                metrics=metrics,
                artifacts={str(html_path): "drift"},
                dicts={"drift/summary.json": json.loads(json.dumps(summary, default=str))},
            )
        return {
            "mlflow_run_id": run_id,
            "mlflow_experiment_id": experiment_id,
            "mlflow_run_url": self.hook.run_url(experiment_id, run_id),
        }


class DriftAssetEventOperator(BaseOperator):
    """Emit the drift asset event with the verdict in ``extra``, only when the verdict exceeds the policy.

    Put the drift asset in ``outlets``. A verdict that does not exceed the policy skips the task, and a
    skipped task emits no asset event, so the training DAG scheduled on the asset is not queued.

    :param verdict: the drift check's return value (templated; usually ``check.output``).
    :param asset: the asset to emit (default: the first outlet).
    """

    template_fields: Sequence[str] = ("verdict",)

    def __init__(self, *, verdict: Any, asset: Asset | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict
        self.asset = asset

    def execute(self, context: Context) -> dict[str, Any]:
        """Set the event's ``extra`` to the verdict, or skip when there is no drift."""
        verdict = parse_payload(self.verdict, name="verdict", required=False)
        if not verdict.get("drift_detected"):
            raise AirflowSkipException("Drift is within the policy; no drift event emitted.")
        asset = self.asset or (self.outlets[0] if self.outlets else None)
        if asset is None:
            raise ValueError("DriftAssetEventOperator needs the drift asset in outlets (or asset=...).")
        extra = {key: verdict.get(key) for key in EVENT_KEYS}
        context["outlet_events"][asset].extra = extra
        log.info("Emitting %s with verdict %s", asset.name, extra)
        model_name, run_ts = str(verdict.get("model_name")), verdict.get("run_ts")
        links = {"mlflow_run": verdict.get("mlflow_run_url")}
        if run_ts:
            links["evidently_report"] = EvidentlyReportLink.format_str.format(
                base_url=api_base_url(), model_name=model_name, run_ts=run_ts
            )
        reason = "; ".join(verdict.get("reasons") or []) or "drift exceeds the policy"
        record_audit(RETRAINING_TRIGGER, model_name, outcome="drift_detected", reason=reason, context=context,
                     details={**extra, "asset": asset.name}, links=links)  # fmt: skip
        return extra


class DriftAlertOperator(BaseOperator):
    """Send a drift alert through the configured notifier (``[mlops] alert_notifier``: log or webhook).

    :param verdict: the drift check's return value (templated; usually ``check.output``).
    :param notifier: the notifier kind (``log``/``webhook``); default from settings.
    """

    template_fields: Sequence[str] = ("verdict",)

    def __init__(self, *, verdict: Any, notifier: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict
        self.notifier = notifier

    def execute(self, context: Context) -> dict[str, Any]:
        """Notify when the verdict exceeds the policy; skip otherwise."""
        from mlops_provider.notifications import alert_notifier

        verdict = parse_payload(self.verdict, name="verdict", required=False)
        if not verdict.get("drift_detected"):
            raise AirflowSkipException("Drift is within the policy; no alert sent.")
        details = {key: verdict.get(key) for key in ALERT_KEYS}
        title = f"Drift on {verdict.get('model_name')} v{verdict.get('champion_version')}: retraining requested"
        alert_notifier(title=title, details=details, kind=self.notifier).notify(context)
        return {"title": title, **details}
