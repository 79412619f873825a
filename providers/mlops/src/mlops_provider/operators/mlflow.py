"""The evaluation gate: decide whether a newly trained model version may replace the ``champion``.

Candidate and champion are scored on the same held-out window: the latest time slice of the candidate's
training set (the slice the trainer held out, so the candidate never saw it). The decision and every
reason are recorded in MLflow (tags on the version and the run, ``gate/decision.json`` on the run) and
returned as XCom. Aliases only, never stages: a promoted candidate gets the ``challenger`` alias; the
``champion`` alias is moved by the deploy operator after a successful rollout, never here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import PromotionRejectedError
from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink, persist_mlflow_links

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook

CHALLENGER = "challenger"
CHAMPION = "champion"

DEFAULT_CRITERIA: dict[str, Any] = {
    # Absolute floors the candidate must reach on the evaluation window.
    "min_metrics": {"roc_auc": 0.65},
    # Largest allowed worsening vs the champion on the same window (absolute; for log_loss/brier/ece an increase).
    "max_regression": {"roc_auc": 0.01, "pr_auc": 0.02, "log_loss": 0.02},
    # Per-segment checks: every segment with enough rows must hold its floor and not regress by more than this.
    "segments": {
        "column": "channel",
        "min_rows": 200,
        "min_metrics": {"roc_auc": 0.55},
        "max_regression": {"roc_auc": 0.05},
    },
}


def merge_criteria(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base`` (``None`` removes a key, e.g. ``{"segments": None}``)."""
    out = json.loads(json.dumps(base))
    for key, value in (override or {}).items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_criteria(out[key], value)
        else:
            out[key] = value
    return out


def _worse_by(metric: str, candidate: float, champion: float) -> float:
    """How much worse the candidate is (positive = worse), given the metric's direction."""
    from mlops_provider.training.evaluation import METRIC_DIRECTIONS

    if METRIC_DIRECTIONS.get(metric, "max") == "max":
        return champion - candidate
    return candidate - champion


def _meets(metric: str, value: float, floor: float) -> bool:
    from mlops_provider.training.evaluation import METRIC_DIRECTIONS

    return value >= floor if METRIC_DIRECTIONS.get(metric, "max") == "max" else value <= floor


def evaluate_criteria(
    criteria: dict[str, Any],
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    candidate_segments: dict[str, dict[str, float]] | None = None,
    champion_segments: dict[str, dict[str, float]] | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Apply the criteria; return ``(failures, checks)`` where every check records its inputs and outcome."""
    failures: list[str] = []
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, message: str, **details: Any) -> None:
        checks.append({"check": name, "passed": bool(ok), "message": message, **details})
        if not ok:
            failures.append(message)

    for metric, floor in (criteria.get("min_metrics") or {}).items():
        value = candidate.get(metric)
        if value is None:
            check(f"min_{metric}", False, f"candidate has no metric {metric!r}")
            continue
        check(f"min_{metric}", _meets(metric, value, floor), f"candidate {metric}={value:.4f} vs required {floor}",
              value=value, threshold=floor)  # fmt: skip
    if champion is not None:
        for metric, allowed in (criteria.get("max_regression") or {}).items():
            if metric not in candidate or metric not in champion:
                continue
            worse = _worse_by(metric, candidate[metric], champion[metric])
            check(
                f"regression_{metric}",
                worse <= allowed,
                f"{metric}: candidate {candidate[metric]:.4f} vs champion {champion[metric]:.4f} "
                f"(worse by {worse:+.4f}, allowed {allowed})",
                candidate=candidate[metric], champion=champion[metric], allowed=allowed,
            )  # fmt: skip
    seg = criteria.get("segments") or {}
    for value, metrics in sorted((candidate_segments or {}).items()):
        for metric, floor in (seg.get("min_metrics") or {}).items():
            if metric in metrics:
                check(f"segment_min_{metric}[{value}]", _meets(metric, metrics[metric], floor),
                      f"segment {seg.get('column')}={value}: candidate {metric}={metrics[metric]:.4f} vs required {floor}",
                      segment=value, value=metrics[metric], threshold=floor)  # fmt: skip
        champ = (champion_segments or {}).get(value)
        if champ is None:
            continue
        for metric, allowed in (seg.get("max_regression") or {}).items():
            if metric in metrics and metric in champ:
                worse = _worse_by(metric, metrics[metric], champ[metric])
                check(f"segment_regression_{metric}[{value}]", worse <= allowed,
                      f"segment {seg.get('column')}={value}: {metric} candidate {metrics[metric]:.4f} vs champion "
                      f"{champ[metric]:.4f} (worse by {worse:+.4f}, allowed {allowed})",
                      segment=value, candidate=metrics[metric], champion=champ[metric], allowed=allowed)  # fmt: skip
    return failures, checks


class MlflowEvaluationGateOperator(BaseOperator):
    """Score the candidate and the current ``champion`` on the same held-out window and decide on promotion.

    :param model_name: registered model name. (templated)
    :param candidate: the XGBoostTrainOperator's XCom (``model_version``, ``run_id``, ...). (templated)
    :param training_set: the candidate's training-set manifest (or its URI); its latest time slice is the
        evaluation window. (templated)
    :param criteria: overrides of :data:`DEFAULT_CRITERIA` (``min_metrics``, ``max_regression``, ``segments``
        with ``column``/``min_rows``/``min_metrics``/``max_regression``), merged over ``[mlops] promotion_criteria``.
        (templated)
    :param holdout_fraction: size of the evaluation window; default the candidate run's ``holdout_fraction``.
    :param on_reject: ``skip`` (push the XCom, then skip: deploy and smoke test are skipped) or ``fail``
        (raise :class:`~mlops_provider.exceptions.PromotionRejectedError`).
    :param mlflow_conn_id: MLflow connection; default ``[mlops] mlflow_conn_id``. (templated)
    """

    template_fields: Sequence[str] = ("model_name", "candidate", "training_set", "criteria", "mlflow_conn_id")
    template_fields_renderers = {"candidate": "json", "training_set": "json", "criteria": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#fdd0a2"

    def __init__(
        self,
        *,
        model_name: str,
        candidate: dict[str, Any] | str,
        training_set: dict[str, Any] | str,
        criteria: dict[str, Any] | None = None,
        holdout_fraction: float | None = None,
        on_reject: str = "skip",
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_reject not in ("skip", "fail"):
            raise ValueError(f"on_reject must be 'skip' or 'fail', not {on_reject!r}")
        self.model_name = model_name
        self.candidate = candidate
        self.training_set = training_set
        self.criteria = criteria
        self.holdout_fraction = holdout_fraction
        self.on_reject = on_reject
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        """MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id)

    def resolved_criteria(self) -> dict[str, Any]:
        """Defaults, then ``[mlops] promotion_criteria``, then the ``criteria`` argument."""
        from mlops_provider.payloads import parse_payload
        from mlops_provider.settings import get_settings

        base = merge_criteria(DEFAULT_CRITERIA, get_settings().promotion_criteria or None)
        return merge_criteria(base, parse_payload(self.criteria, name="criteria", required=False) or None)

    # ------------------------------------------------------------------ scoring
    def _load_model(self, client: Any, version: Any) -> tuple[Any, list[str], float]:
        """Download a version's model; return ``(booster, feature_names, threshold)``."""
        import tempfile

        import mlflow.artifacts
        import mlflow.xgboost

        uri = client.get_model_version_download_uri(self.model_name, version.version)
        with self.hook.credentials():
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=tempfile.mkdtemp(prefix="mlops-gate-"), tracking_uri=self.hook.tracking_uri
            )
            booster = mlflow.xgboost.load_model(local)
        features = list(booster.feature_names or [])
        threshold = version.tags.get("mlops.threshold")
        if threshold is None and version.run_id:
            threshold = client.get_run(version.run_id).data.tags.get("mlops.threshold")
        return booster, features, float(threshold) if threshold is not None else 0.5

    def _score(
        self, booster: Any, features: list[str], window: Any, label: str, threshold: float, segment: dict
    ) -> tuple[dict, dict | None]:
        from mlops_provider.training.evaluation import binary_metrics, feature_matrix, segment_metrics

        x = feature_matrix(window, features)
        p = booster.inplace_predict(x.to_numpy())
        y = window[label].astype(int).to_numpy()
        metrics = binary_metrics(y, p, threshold, what="evaluation window")
        segments = None
        column = segment.get("column")
        if column and column in window.columns:
            segments = segment_metrics(window, y, p, column, threshold, min_rows=int(segment.get("min_rows", 1)))
        return metrics, segments

    def _manifest(self) -> dict[str, Any]:
        ts = self.training_set
        if isinstance(ts, str):
            ts = json.loads(ts) if ts.strip().startswith("{") else {"uri": ts}
        if not ts.get("label_column") or not ts.get("timestamp_column"):
            from mlops_provider.storage import storage_path

            uri = str(ts["uri"]).rstrip("/")
            folder = uri.rsplit("/", 1)[0] if uri.endswith(".parquet") else uri
            ts = {**json.loads(storage_path(f"{folder}/manifest.json").read_text()), **ts}
        return ts

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        """Score, decide, record the decision in MLflow and XCom; skip (or fail) on reject."""
        from mlops_provider.storage import read_parquet
        from mlops_provider.training.evaluation import holdout_window

        candidate = json.loads(self.candidate) if isinstance(self.candidate, str) else dict(self.candidate or {})
        if not candidate.get("model_version"):
            raise PromotionRejectedError(
                f"no candidate version to gate (got {candidate!r}): did the training task succeed?",
                reasons=["no candidate version"],
            )
        criteria = self.resolved_criteria()
        client = self.hook.get_client()
        cand_version = client.get_model_version(self.model_name, str(candidate["model_version"]))
        run_id = cand_version.run_id or candidate.get("run_id")
        manifest = self._manifest()
        label = manifest["label_column"]
        fraction = self.holdout_fraction
        if fraction is None and run_id:
            fraction = float(client.get_run(run_id).data.params.get("holdout_fraction", 0.15))
        data = read_parquet(manifest.get("uri"))
        window = holdout_window(data, manifest["timestamp_column"], fraction or 0.15)
        segment_cfg = criteria.get("segments") or {}
        notes: list[str] = []
        if segment_cfg.get("column") and segment_cfg["column"] not in window.columns:
            notes.append(f"segment column {segment_cfg['column']!r} is not in the training set: no per-segment checks")

        booster, features, threshold = self._load_model(client, cand_version)
        cand_metrics, cand_segments = self._score(booster, features, window, label, threshold, segment_cfg)

        champion_version, champ_metrics, champ_segments = None, None, None
        champion = self.hook.get_version_by_alias(self.model_name, CHAMPION)
        if champion is None:
            notes.append("no champion yet: first model, gated on the absolute criteria only")
        elif str(champion.version) == str(cand_version.version):
            champion_version = str(champion.version)
            notes.append(f"candidate version {champion.version} already is the champion")
        else:
            champion_version = str(champion.version)
            try:
                champ_booster, champ_features, champ_threshold = self._load_model(client, champion)
                champ_metrics, champ_segments = self._score(
                    champ_booster, champ_features, window, label, champ_threshold, segment_cfg
                )
            except Exception as exc:  # deleted artifacts, features no longer produced, corrupt model
                self.log.warning("Champion version %s cannot be scored: %s", champion.version, exc)
                notes.append(
                    f"champion version {champion.version} cannot be scored on this window "
                    f"({type(exc).__name__}: {str(exc)[:300]}): gated on the absolute criteria only"
                )
                champ_metrics = None

        failures, checks = evaluate_criteria(criteria, cand_metrics, champ_metrics, cand_segments, champ_segments)
        decision = "reject" if failures else "promote"
        reasons = failures if failures else [c["message"] for c in checks if c["passed"]]
        reasons = [*reasons, *notes]
        result = {
            "decision": decision,
            "reasons": reasons,
            "model_name": self.model_name,
            "candidate_version": str(cand_version.version),
            "champion_version": champion_version,
            "candidate_metrics": cand_metrics,
            "champion_metrics": champ_metrics,
            "candidate_segments": cand_segments,
            "feature_columns": features,
            "champion_segments": champ_segments,
            "checks": checks,
            "criteria": criteria,
            "evaluation_window": {
                "rows": len(window),
                "start": str(window[manifest["timestamp_column"]].min()),
                "end": str(window[manifest["timestamp_column"]].max()),
                "holdout_fraction": fraction,
                "training_set_uri": manifest.get("uri"),
                "training_set_hash": manifest.get("hash"),
            },
            "model_uri": f"models:/{self.model_name}/{cand_version.version}",
            "artifact_uri": client.get_model_version_download_uri(self.model_name, cand_version.version),
            "run_id": run_id,
            "decided_at": datetime.now(UTC).isoformat(),
        }
        self._record(client, result)
        if decision == "promote":
            self.hook.set_alias(self.model_name, CHALLENGER, cand_version.version)
        persist_mlflow_links(
            context,
            self.hook,
            experiment_id=client.get_run(run_id).info.experiment_id if run_id else None,
            run_id=run_id,
            model_name=self.model_name,
            version=cand_version.version,
        )
        self.log.info("Gate decision for %s v%s: %s", self.model_name, cand_version.version, decision.upper())
        for reason in reasons:
            self.log.info("  - %s", reason)
        if decision == "reject":
            context["ti"].xcom_push(key="return_value", value=result)
            message = f"{self.model_name} version {cand_version.version} was not promoted: " + "; ".join(failures)
            if self.on_reject == "fail":
                raise PromotionRejectedError(message, reasons=failures)
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(message)
        return result

    def _record(self, client: Any, result: dict[str, Any]) -> None:
        """Tags on the version and the run, plus ``gate/decision.json`` on the run."""
        version = result["candidate_version"]
        summary = "; ".join(result["reasons"])[:4900]
        tags = {
            "mlops.gate.decision": result["decision"],
            "mlops.gate.reasons": summary,
            "mlops.gate.champion_version": str(result["champion_version"] or ""),
            "mlops.gate.decided_at": result["decided_at"],
        }
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, version, key, value)
        run_id = result.get("run_id")
        if run_id:
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            client.log_dict(run_id, result, "gate/decision.json")
