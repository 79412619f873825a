"""Drift checks of a served model against its training data, with Evidently reports.

``EvidentlyDriftCheckOperator`` compares the current window of validated data (and the predictions the
endpoint logged for it) with the training-set snapshot of the model's ``champion`` version, found
through the MLflow lineage the trainer records (the run's ``training_set_uri`` tag, or its
``training_set/manifest.json`` artifact). The verdict comes from the fast drift engine
(:mod:`mlops_provider.drift`, Evidently's default tests on every row); the Evidently HTML report is
built on a random sample of ``report_sample_rows`` rows of each side, because Evidently needs about a
minute and a half per million rows. Report and JSON summary go to
``<data_root>/reports/drift/<model>/<run_ts>/`` and to an MLflow run in the ``<model>-monitoring``
experiment.

``DriftAssetEventOperator`` emits the drift asset event, carrying the verdict in its ``extra``, only
when the verdict exceeds the drift policy; otherwise it skips, and a skipped task emits nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider.drift.engine import DriftConfig
from mlops_provider.drift.policy import DriftPolicy
from mlops_provider.exceptions import DriftReferenceMissingError
from mlops_provider.links.evidently import EvidentlyReportLink, api_base_url

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Asset, Context

    from mlops_provider.hooks.mlflow import MlflowHook

log = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
MONITORING_EXPERIMENT_SUFFIX = "-monitoring"


def _days(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if last < first:
        raise ValueError(f"current_end {end} is before current_start {start}.")
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def read_window(zone_uri: str, start: str, end: str, *, pattern: str = "*.parquet") -> tuple[pd.DataFrame, list[str]]:
    """Read the ``dt=YYYY-MM-DD`` partitions of ``zone_uri`` between ``start`` and ``end`` (inclusive).

    Returns the rows and the days that had data; missing days are skipped.
    """
    import pandas as pd

    from mlops_provider.storage import read_parquet, storage_path

    frames, found = [], []
    for day in _days(start, end):
        folder = storage_path(f"{zone_uri.rstrip('/')}/dt={day}")
        if not folder.exists():
            continue
        files = sorted(p for p in folder.glob(pattern) if p.is_file())
        if not files:
            continue
        frames.extend(read_parquet(p) for p in files)
        found.append(day)
    if not frames:
        return pd.DataFrame(), found
    return pd.concat(frames, ignore_index=True), found


def load_json_setting(value: dict | str | None, what: str) -> dict:
    """Accept a mapping, a JSON string or empty; a bad JSON string is a configuration error that names the setting."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return value
    try:
        loaded = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} is not valid JSON ({err.msg} at position {err.pos}).") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{what} must be a JSON object.")
    return loaded


def build_evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, *, columns: list[str], config: DriftConfig, sample_rows: int
) -> str:
    """Return Evidently's ``DataDriftPreset`` HTML report on at most ``sample_rows`` rows of each side.

    The sample is drawn with a fixed seed so reruns give the same report; the tests and thresholds are
    the configured ones, so the report shows the same methods as the decision.
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    def sample(df: pd.DataFrame) -> pd.DataFrame:
        df = df[columns]
        return df.sample(n=sample_rows, random_state=0) if len(df) > sample_rows else df

    preset = DataDriftPreset(
        columns=columns,
        drift_share=config.drift_share,
        method=config.method,
        num_method=config.num_method,
        cat_method=config.cat_method,
        per_column_method=dict(config.per_column_method) or None,
        threshold=config.threshold,
        num_threshold=config.num_threshold,
        cat_threshold=config.cat_threshold,
        per_column_threshold=dict(config.per_column_threshold) or None,
    )
    snapshot = Report([preset], include_tests=True).run(sample(current), sample(reference))
    return snapshot.get_html_str(as_iframe=False)


class EvidentlyDriftCheckOperator(BaseOperator):
    """Check a model's current data for drift against the training set of its ``champion`` version.

    Returns ``{"drift_detected", "drift_share", "drifted_features", "report_uri", "summary_uri",
    "reference_uri", "champion_version", ...}`` where ``drift_detected`` means "exceeds the drift
    policy" (see :class:`~mlops_provider.drift.policy.DriftPolicy`); ``reasons`` says why. Skips
    (``AirflowSkipException``) when the model has no ``champion`` yet or the window has no data.

    :param model_name: registered model name (templated).
    :param dataset: dataset whose validated zone is the current data (templated).
    :param current_start: first day ``YYYY-MM-DD`` of the current window (templated).
    :param current_end: last day of the current window (templated).
    :param alias: alias of the version to check (templated).
    :param mlflow_conn_id: MLflow connection (templated); default ``[mlops] mlflow_conn_id``.
    :param drift_tests: per-feature tests/thresholds, Evidently's preset argument names (templated);
        default ``[mlops] drift_tests``. See :class:`~mlops_provider.drift.engine.DriftConfig`.
    :param policy: drift policy mapping (templated); default ``[mlops] drift_policy``.
    :param columns: features to check; default the training set's ``feature_columns``.
    :param report_sample_rows: rows per side in the HTML report; default ``[mlops] drift_report_sample_rows``.
    :param include_predictions: also check drift of the predictions the endpoint logged.
    :param feast_conn_id: Feast connection used to compute the model's features for the current window
        when the validated zone lacks them (aggregates, on-demand features); default ``[mlops] feast_conn_id``.
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
        alias: str = "champion",
        mlflow_conn_id: str | None = None,
        drift_tests: dict | str | None = None,
        policy: dict | str | None = None,
        columns: list[str] | None = None,
        report_sample_rows: int | None = None,
        include_predictions: bool = True,
        feast_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.feast_conn_id = feast_conn_id
        self.model_name = model_name
        self.dataset = dataset
        self.current_start = current_start
        self.current_end = current_end
        self.alias = alias
        self.mlflow_conn_id = mlflow_conn_id
        self.drift_tests = drift_tests
        self.policy = policy
        self.columns = columns
        self.report_sample_rows = report_sample_rows
        self.include_predictions = include_predictions

    @cached_property
    def hook(self) -> MlflowHook:
        """MLflow hook (registry, lineage, monitoring runs)."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    # -- reference -------------------------------------------------------------------------------

    def _reference(self, version: Any) -> tuple[str, dict]:
        """Return the champion's training-set URI and manifest, from the run's tags or its manifest artifact."""
        from mlops_provider.storage import storage_path

        client = self.hook.get_client()
        run_id = getattr(version, "run_id", None)
        if not run_id:
            raise DriftReferenceMissingError(
                f"{self.model_name} version {version.version} has no MLflow run, so its training set is unknown; "
                "register versions from a training run that tags training_set_uri.",
                model_name=self.model_name,
                version=str(version.version),
            )
        tags = client.get_run(run_id).data.tags
        uri = tags.get("training_set_uri")
        manifest: dict = {}
        if uri:
            candidate = storage_path(uri)
            manifest_path = (candidate if candidate.is_dir() else candidate.parent) / "manifest.json"
            if manifest_path.exists():
                manifest = json.loads(manifest_path.read_text())
        if not manifest:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    local = client.download_artifacts(run_id, "training_set/manifest.json", tmp)
                    manifest = json.loads(Path(local).read_text())
                except Exception as err:  # MLflow raises several types for a missing artifact
                    log.info("Run %s has no readable training_set/manifest.json artifact (%s).", run_id, err)
        uri = uri or manifest.get("uri")
        if not uri:
            raise DriftReferenceMissingError(
                f"Run {run_id} of {self.model_name} version {version.version} has neither a training_set_uri tag "
                "nor a training_set/manifest.json artifact with a 'uri'; the drift reference cannot be found. "
                "Retrain with the bundle's XGBoostTrainOperator, which records this lineage.",
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
        return uri, manifest

    # -- current features ------------------------------------------------------------------------

    def _features_from_feast(self, current: pd.DataFrame, manifest: dict, missing: list[str]) -> pd.DataFrame | None:
        """The training set's features for the current rows, from the feature service it was built with.

        Point-in-time joins of the current window's entity keys and timestamps (plus the request fields of
        on-demand views), exactly as the training set was made, so aggregates and derived features are
        compared like for like. Returns None (and logs why) when that is not possible.
        """
        import pandas as pd

        service_name = manifest.get("feature_service")
        timestamp = manifest.get("timestamp_column") or "event_timestamp"
        if not service_name:
            log.info("Training-set manifest names no feature_service; features %s cannot be rebuilt.", missing)
            return None
        try:
            from mlops_provider.hooks.feast import FeastHook

            store = FeastHook(feast_conn_id=self.feast_conn_id).get_feature_store()
            service = store.get_feature_service(service_name)
            odfv_names = {v.name for v in store.list_on_demand_feature_views()}
            request_fields: list[str] = []
            for projection in service.feature_view_projections:
                if projection.name in odfv_names:
                    odfv = store.get_on_demand_feature_view(projection.name)
                    for source in odfv.source_request_sources.values():
                        request_fields += [f.name for f in source.schema if f.name not in request_fields]
            keep = [*(manifest.get("entity_columns") or []), timestamp, *request_fields]
            label = manifest.get("label_column")
            if label and label in current.columns:
                keep.append(label)
            keep = list(dict.fromkeys(c for c in keep if c in current.columns))
            entity_df = current[keep].copy()
            entity_df["event_timestamp"] = pd.to_datetime(entity_df[timestamp], utc=True)
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

    # -- model scoring (prediction drift, performance) ---------------------------------------------

    def _load_model(self, version: Any, workdir: str):
        """Load the champion for scoring; returns a ``predict(frame) -> scores`` callable.

        The model is downloaded with the hook's URIs passed explicitly (MLflow's global tracking and
        registry URIs are left alone) into ``workdir``.
        """
        import mlflow.artifacts
        import mlflow.pyfunc
        import numpy as np

        # The version's concrete artifact location, resolved through the hook's own client.
        artifact_uri = self.hook.get_client().get_model_version_download_uri(self.model_name, str(version.version))
        with self.hook.credentials():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri,
                dst_path=workdir,
                tracking_uri=self.hook.tracking_uri,
                registry_uri=self.hook.registry_uri,
            )
        try:
            import mlflow.xgboost

            model = mlflow.xgboost.load_model(local)
        except Exception:  # not an xgboost flavour: fall back to pyfunc
            model = mlflow.pyfunc.load_model(local)

        def predict(frame: pd.DataFrame) -> np.ndarray:
            if hasattr(model, "predict_proba"):
                return np.asarray(model.predict_proba(frame))[:, -1]
            if type(model).__name__ == "Booster":
                import xgboost

                return np.asarray(model.predict(xgboost.DMatrix(frame)))
            return np.asarray(model.predict(frame)).reshape(len(frame), -1)[:, -1]

        return predict

    @staticmethod
    def _metric(name: str, labels: Any, scores: Any) -> float | None:
        from sklearn import metrics

        if len(set(labels)) < 2:
            return None
        if name == "roc_auc":
            return float(metrics.roc_auc_score(labels, scores))
        if name == "average_precision":
            return float(metrics.average_precision_score(labels, scores))
        return float(metrics.accuracy_score(labels, (scores >= 0.5).astype(int)))

    # -- main ----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the check; see the class docstring for the returned dict."""
        import pandas as pd

        from mlops_provider.drift.engine import compute_drift
        from mlops_provider.settings import get_settings
        from mlops_provider.storage import read_parquet, write_bytes_atomic

        settings = get_settings()
        config = DriftConfig.from_dict(
            load_json_setting(self.drift_tests if self.drift_tests else settings.drift_tests, "drift_tests")
        )
        policy = DriftPolicy.from_dict(
            load_json_setting(self.policy if self.policy else settings.drift_policy, "policy")
        )
        sample_rows = self.report_sample_rows or settings.drift_report_sample_rows

        version = self.hook.get_version_by_alias(self.model_name, self.alias)
        if version is None:
            raise AirflowSkipException(
                f"Model {self.model_name!r} has no {self.alias!r} version yet, so there is nothing to compare: "
                "the drift check starts once the training pipeline promotes a version."
            )
        champion_version = str(version.version)
        reference_uri, manifest = self._reference(version)
        reference = read_parquet(reference_uri)
        current, days = read_window(settings.zone_uri("validated", self.dataset), self.current_start, self.current_end)
        if current.empty:
            raise AirflowSkipException(
                f"No validated {self.dataset} data between {self.current_start} and {self.current_end} "
                f"under {settings.zone_uri('validated', self.dataset)}: nothing to compare."
            )
        predictions = pd.DataFrame()
        if self.include_predictions:
            predictions, _ = read_window(
                f"{settings.data_root.rstrip('/')}/predictions/{self.model_name}", self.current_start, self.current_end
            )
            if not predictions.empty and "model_version" in predictions.columns:
                predictions = predictions[predictions["model_version"].astype(str) == champion_version]

        label = manifest.get("label_column")
        features = list(self.columns or manifest.get("feature_columns") or [])
        if not features:
            excluded = {label, manifest.get("timestamp_column"), *(manifest.get("entity_columns") or [])}
            features = [c for c in reference.columns if c not in excluded]
        missing_in_reference = [c for c in features if c not in reference.columns]
        if missing_in_reference:
            raise DriftReferenceMissingError(
                f"Training set {reference_uri} lacks the feature columns {missing_in_reference}.",
                model_name=self.model_name,
                version=champion_version,
            )
        # Features the validated zone lacks (aggregates, on-demand features) are rebuilt for the current
        # rows with the training set's Feast feature service; failing that, read from the request log,
        # which holds exactly the model's inputs.
        missing_in_current = [c for c in features if c not in current.columns]
        features_source = "validated"
        if missing_in_current:
            rebuilt = self._features_from_feast(current, manifest, missing_in_current)
            if rebuilt is not None and len(rebuilt):
                current = rebuilt
                features_source = f"feast:{manifest.get('feature_service')}"
        from_validated = [c for c in features if c in current.columns]
        from_predictions = [c for c in features if c not in current.columns and c in predictions.columns]
        unchecked = [c for c in features if c not in from_validated and c not in from_predictions]
        if not from_validated and not from_predictions:
            raise DriftReferenceMissingError(
                f"None of the features {features} of {self.model_name} v{champion_version} is in the validated "
                f"{self.dataset} data or the prediction log of {self.current_start}..{self.current_end}.",
                model_name=self.model_name,
                version=champion_version,
            )

        results = []
        if from_validated:
            results.append(compute_drift(reference, current, columns=from_validated, config=config))
        if from_predictions:
            results.append(compute_drift(reference, predictions, columns=from_predictions, config=config))
        columns = [c for r in results for c in r.columns]
        drifted = [c.column for c in columns if c.drift_detected]
        share = len(drifted) / len(columns)

        target_drift = None
        if label and label in reference.columns and label in current.columns:
            target = compute_drift(reference, current, columns=[label], config=config)
            target_drift = asdict_column(target.columns[0])

        prediction_drift, performance = self._model_checks(
            version, reference, current, predictions, features, label, policy, config
        )
        reasons = policy.evaluate(
            drift_share=share,
            drifted_features=drifted,
            performance_drop=(performance or {}).get("drop"),
            prediction_drifted=(prediction_drift or {}).get("drift_detected"),
        )

        run_ts = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        report_dir = f"{settings.data_root.rstrip('/')}/reports/drift/{self.model_name}/{run_ts}"
        report_uri, summary_uri = f"{report_dir}/report.html", f"{report_dir}/summary.json"
        # The report shows the validated-data features (and the label); with none, the request log.
        if from_validated:
            report_source, report_columns = current, from_validated + ([label] if target_drift else [])
        else:
            report_source, report_columns = predictions, from_predictions
        html = build_evidently_report(
            reference, report_source, columns=report_columns, config=config, sample_rows=sample_rows
        )
        write_bytes_atomic(html.encode(), report_uri)

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
            "reference_rows": len(reference),
            "current_rows": len(current),
            "prediction_rows": len(predictions),
            "features_source": features_source,
            "drift_detected": bool(reasons),
            "reasons": reasons,
            "policy": policy.to_dict(),
            "drift_tests": dict(config.__dict__),
            "drift_share": share,
            "drifted_features": drifted,
            "dataset_drift": bool(share >= config.drift_share),
            "features": [asdict_column(c) for c in columns],
            "unchecked_features": unchecked,
            "target_drift": target_drift,
            "prediction_drift": prediction_drift,
            "performance": performance,
            "decision_seconds": round(sum(r.seconds for r in results), 3),
            "report_uri": report_uri,
            "report_sample_rows": sample_rows,
            "summary_uri": summary_uri,
        }
        summary["mlflow_run_id"] = self._log_to_mlflow(summary, html)
        write_bytes_atomic(json.dumps(summary, indent=2, default=str).encode(), summary_uri)
        EvidentlyReportLink.persist(context, base_url=api_base_url(), model_name=self.model_name, run_ts=run_ts)
        log.info(
            "Drift check of %s v%s: %d/%d features drifted (share %.2f); exceeds policy: %s %s. Report: %s",
            self.model_name,
            champion_version,
            len(drifted),
            len(columns),
            share,
            bool(reasons),
            reasons,
            report_uri,
        )
        return {
            "drift_detected": bool(reasons),
            "drift_share": share,
            "drifted_features": drifted,
            "report_uri": report_uri,
            "summary_uri": summary_uri,
            "reference_uri": reference_uri,
            "champion_version": champion_version,
            "model_name": self.model_name,
            "reasons": reasons,
            "dataset_drift": summary["dataset_drift"],
            "target_drifted": bool(target_drift and target_drift["drift_detected"]),
            "prediction_drifted": bool(prediction_drift and prediction_drift.get("drift_detected")),
            "performance_drop": (performance or {}).get("drop"),
            "mlflow_run_id": summary["mlflow_run_id"],
            "run_ts": run_ts,
            "window": [self.current_start, self.current_end],
        }

    def _model_checks(
        self,
        version: Any,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        predictions: pd.DataFrame,
        features: list[str],
        label: str | None,
        policy: DriftPolicy,
        config: DriftConfig,
    ) -> tuple[dict | None, dict | None]:
        """Prediction drift (logged predictions vs the champion's scores on its training set) and performance."""
        import pandas as pd

        from mlops_provider.drift.engine import compute_drift

        has_logged = not predictions.empty and PREDICTION_COLUMN in predictions.columns
        scorable_current = all(c in current.columns for c in features)
        has_labels = bool(label and label in current.columns and label in reference.columns and scorable_current)
        if not has_logged and not has_labels:
            return None, None
        try:
            with tempfile.TemporaryDirectory() as workdir:  # the model is in memory once loaded
                predict = self._load_model(version, workdir)
            reference_sample = reference.sample(n=min(len(reference), 200_000), random_state=0)
            reference_scores = predict(reference_sample[features])
        except Exception as err:  # the verdict on features stands; say why these checks are missing
            reason = f"could not score the champion ({type(err).__name__}: {err})"
            log.warning("Prediction drift and performance not checked: %s", reason)
            unavailable = {"status": "unavailable", "reason": reason}
            return (unavailable if has_logged else None), (unavailable if has_labels else None)

        prediction_drift = None
        if has_logged:
            result = compute_drift(
                pd.DataFrame({PREDICTION_COLUMN: reference_scores.astype(float)}),
                pd.DataFrame({PREDICTION_COLUMN: predictions[PREDICTION_COLUMN].astype(float).to_numpy()}),
                config=DriftConfig(
                    per_column_method={PREDICTION_COLUMN: m}
                    if (m := config.per_column_method.get(PREDICTION_COLUMN))
                    else {},
                    per_column_threshold={PREDICTION_COLUMN: t}
                    if (t := config.per_column_threshold.get(PREDICTION_COLUMN)) is not None
                    else {},
                ),
            )
            prediction_drift = {"status": "checked", **asdict_column(result.columns[0])}
        performance = None
        if has_labels:
            current_scores = predict(current[features])
            ref_value = self._metric(policy.performance_metric, reference_sample[label].to_numpy(), reference_scores)
            cur_value = self._metric(policy.performance_metric, current[label].to_numpy(), current_scores)
            performance = {
                "status": "checked" if ref_value is not None and cur_value is not None else "undefined",
                "metric": policy.performance_metric,
                "reference": ref_value,
                "current": cur_value,
                "drop": (ref_value - cur_value) if ref_value is not None and cur_value is not None else None,
            }
        return prediction_drift, performance

    def _log_to_mlflow(self, summary: dict[str, Any], html: str) -> str:
        """Log the check as a run of the ``<model>-monitoring`` experiment; return its run id."""
        client = self.hook.get_client()
        name = f"{self.model_name}{MONITORING_EXPERIMENT_SUFFIX}"
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            location = self.hook.artifact_location
            experiment_id = client.create_experiment(
                name, artifact_location=f"{location.rstrip('/')}/{name}" if location else None
            )
        else:
            experiment_id = experiment.experiment_id
        run = client.create_run(
            experiment_id,
            run_name=f"drift-{summary['run_ts']}",
            tags={
                "mlops.kind": "drift_check",
                "model_name": self.model_name,
                "model_version": summary["champion_version"],
                "dataset": self.dataset,
                "window_start": self.current_start,
                "window_end": self.current_end,
                "drift_detected": str(summary["drift_detected"]).lower(),
                "training_set_uri": summary["reference_uri"],
                "report_uri": summary["report_uri"],
            },
        )
        run_id = run.info.run_id
        from mlflow.entities import Metric

        now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        metrics = [
            Metric("drift_share", float(summary["drift_share"]), now, 0),
            Metric("drifted_features", float(len(summary["drifted_features"])), now, 0),
            Metric("drift_detected", float(summary["drift_detected"]), now, 0),
        ]
        metrics += [Metric(f"drift_score.{c['column']}", float(c["score"]), now, 0) for c in summary["features"]]
        if summary["performance"] and summary["performance"].get("drop") is not None:
            metrics.append(Metric("performance_drop", float(summary["performance"]["drop"]), now, 0))
        client.log_batch(run_id, metrics=metrics)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "report.html").write_text(html)
            (Path(tmp) / "summary.json").write_text(json.dumps({**summary, "mlflow_run_id": run_id}, default=str))
            client.log_artifact(run_id, str(Path(tmp) / "report.html"), "drift")
            client.log_artifact(run_id, str(Path(tmp) / "summary.json"), "drift")
        client.set_terminated(run_id)
        summary["mlflow_experiment_id"] = experiment_id
        summary["mlflow_run_url"] = self.hook.run_url(experiment_id, run_id)
        return run_id


def asdict_column(column: Any) -> dict[str, Any]:
    """JSON form of a :class:`~mlops_provider.drift.engine.ColumnDrift`."""
    from dataclasses import asdict

    return asdict(column)


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
        verdict = self.verdict or {}
        if not verdict.get("drift_detected"):
            raise AirflowSkipException("Drift is within the policy; no drift event emitted.")
        asset = self.asset or (self.outlets[0] if self.outlets else None)
        if asset is None:
            raise ValueError("DriftAssetEventOperator needs the drift asset in outlets (or asset=...).")
        extra = {
            key: verdict.get(key)
            for key in (
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
            )
        }
        context["outlet_events"][asset].extra = extra
        log.info("Emitting %s with verdict %s", asset.name, extra)
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

        verdict = self.verdict or {}
        if not verdict.get("drift_detected"):
            raise AirflowSkipException("Drift is within the policy; no alert sent.")
        details = {
            key: verdict.get(key)
            for key in ("champion_version", "drift_share", "drifted_features", "reasons", "report_uri", "mlflow_run_id")
        }
        title = f"Drift on {verdict.get('model_name')} v{verdict.get('champion_version')}: retraining requested"
        alert_notifier(title=title, details=details, kind=self.notifier).notify(context)
        return {"title": title, **details}


def drift_check_tasks(
    *,
    model_name: str,
    dataset: str,
    current_start: str,
    current_end: str,
    drift_asset: Asset,
    **check_kwargs: Any,
) -> EvidentlyDriftCheckOperator:
    """Add the drift-monitoring tasks to the DAG being defined and return the check task.

    ``check_drift`` -> ``drift_exceeds_policy`` (short-circuit) -> ``emit_drift_event`` (outlet
    ``drift_asset``, verdict in the event's extra) and ``alert_drift`` (configured notifier). The
    event exists only when drift exceeds the policy: a skipped task emits no asset event.
    """
    from airflow.providers.standard.operators.python import ShortCircuitOperator

    from mlops_provider.notifications import alert_notifier

    check = EvidentlyDriftCheckOperator(
        task_id="check_drift",
        model_name=model_name,
        dataset=dataset,
        current_start=current_start,
        current_end=current_end,
        on_failure_callback=alert_notifier(title=f"Drift check of {model_name} failed"),
        **check_kwargs,
    )
    exceeds = ShortCircuitOperator(
        task_id="drift_exceeds_policy",
        python_callable=exceeds_policy,
        op_args=[check.output],
        ignore_downstream_trigger_rules=True,
    )
    emit = DriftAssetEventOperator(task_id="emit_drift_event", verdict=check.output, outlets=[drift_asset])
    alert = DriftAlertOperator(task_id="alert_drift", verdict=check.output)
    exceeds >> [emit, alert]
    return check


def exceeds_policy(verdict: dict | None) -> bool:
    """Whether a drift check's verdict exceeds the policy (the short-circuit condition)."""
    return bool(verdict and verdict.get("drift_detected"))
