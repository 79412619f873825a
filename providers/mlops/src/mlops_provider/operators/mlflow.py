"""The evaluation gate: decide whether a newly trained model version may replace the ``champion``.

Candidate and champion are scored on the same held-out window: the latest time slice of the candidate's
training set (the slice the trainer held out, so the candidate never saw it). The decision and every
reason are recorded in MLflow (tags on the version and the run, ``gate/decision.json`` on the run) and
returned as XCom. Aliases only, never stages: a promoted candidate gets the ``challenger`` alias; the
``champion`` alias is moved by the deploy operator after a successful rollout, never here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator

from mlops_provider.audit import GATE_DECISION, mlflow_links, record_audit
from mlops_provider.exceptions import GateConfigurationError, PromotionRejectedError
from mlops_provider.lineage import (
    BINARY,
    CHALLENGER,
    CHAMPION,
    GATE_CHAMPION_VERSION_TAG,
    GATE_DECIDED_AT_TAG,
    GATE_DECISION_TAG,
    GATE_REASONS_TAG,
    MULTICLASS,
    REGRESSION,
    TASK_TAG,
    TASKS,
)
from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink, persist_mlflow_links
from mlops_provider.payloads import GateDecision, TrainingResult, TrainingSetManifest, parse_payload
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow.entities.model_registry import ModelVersion

    from mlops_provider.hooks.mlflow import MlflowHook

DEFAULT_CRITERIA: dict[str, Any] = {
    # Absolute floors the candidate must reach on the evaluation window.
    "min_metrics": {"roc_auc": 0.65},
    # Largest allowed worsening vs the champion on the same window (absolute; for log_loss/brier/ece an increase).
    "max_regression": {"roc_auc": 0.01, "pr_auc": 0.02, "log_loss": 0.02},
    # Per-segment checks: every segment with enough rows must hold its floor and not regress by more than this.
    # No segment column by default (it names a column of the user's data): pass ``{"segments": {"column": ...}}``
    # in ``criteria`` or ``[mlops] promotion_criteria`` to turn the checks on with these thresholds.
    "segments": {
        "min_rows": 200,
        "min_metrics": {"roc_auc": 0.55},
        "max_regression": {"roc_auc": 0.05},
    },
}
"""Default criteria of a binary classifier (the gate's defaults before task types existed)."""

DEFAULT_CRITERIA_BY_TASK: dict[str, dict[str, Any]] = {
    BINARY: DEFAULT_CRITERIA,
    MULTICLASS: {
        "min_metrics": {"macro_f1": 0.3},
        "max_regression": {"macro_f1": 0.02, "accuracy": 0.02, "mlogloss": 0.05},
        "segments": {"min_rows": 200, "min_metrics": {"macro_f1": 0.2}, "max_regression": {"macro_f1": 0.05}},
    },
    REGRESSION: {
        # No absolute floor: RMSE and MAE are in the label's unit; R² > 0 means better than predicting the mean.
        "min_metrics": {"r2": 0.0},
        "max_regression": {"r2": 0.02},
        "segments": {"min_rows": 200, "max_regression": {"r2": 0.05}},
    },
}
"""Default criteria of each task (:data:`mlops_provider.lineage.TASKS`); metrics from ``TASK_METRICS[task]``."""


def criteria_metrics(criteria: dict[str, Any]) -> list[tuple[str, str]]:
    """Return ``(where, metric)`` for every metric the criteria compare (``where`` like ``segments.min_metrics``)."""
    found = []
    for where, table in (
        ("min_metrics", criteria.get("min_metrics")),
        ("max_regression", criteria.get("max_regression")),
        ("segments.min_metrics", (criteria.get("segments") or {}).get("min_metrics")),
        ("segments.max_regression", (criteria.get("segments") or {}).get("max_regression")),
    ):
        found += [(where, metric) for metric in (table or {})]
    return found


def validate_criteria(criteria: dict[str, Any], task: str) -> None:
    """Refuse criteria that name a metric the ``task`` is not scored on.

    :raises GateConfigurationError: naming the metric, where it is configured, the task and the metrics it has.
    """
    from mlops_provider.training.evaluation import TASK_METRICS

    if task not in TASK_METRICS:
        raise GateConfigurationError(f"unknown task {task!r}; the gate knows {list(TASKS)}", task=task)
    available = list(TASK_METRICS[task])
    for where, metric in criteria_metrics(criteria):
        if metric not in available:
            owners = [t for t, metrics in TASK_METRICS.items() if metric in metrics]
            of = f"a metric of the {owners[0]} task" if owners else "not a metric the gate computes"
            raise GateConfigurationError(
                f"gate criterion {where}.{metric} does not apply to a {task} model ({metric!r} is {of}); "
                f"{task} models are scored on {available}. Fix `criteria` or [mlops] promotion_criteria.",
                metric=metric,
                task=task,
                available=available,
            )


def check_segment_column(criteria: dict[str, Any], columns: Sequence[str]) -> None:
    """Refuse a configured segment column that the evaluation window lacks.

    :raises GateConfigurationError: naming the column and the window's columns.
    """
    column = (criteria.get("segments") or {}).get("column")
    if column and column not in columns:
        available = sorted(map(str, columns))
        raise GateConfigurationError(
            f"segment column {column!r} (criteria segments.column) is not in the evaluation window; "
            f"its columns are {available}. Name one of them, or drop segments.column.",
            column=str(column),
            available=available,
        )


def merge_criteria(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base`` (``None`` removes a key, e.g. ``{"segments": None}``)."""
    out = copy.deepcopy(base)
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
    for segment, metrics in sorted((candidate_segments or {}).items()):
        for metric, floor in (seg.get("min_metrics") or {}).items():
            if metric in metrics:
                check(f"segment_min_{metric}[{segment}]", _meets(metric, metrics[metric], floor),
                      f"segment {seg.get('column')}={segment}: candidate {metric}={metrics[metric]:.4f} vs required {floor}",
                      segment=segment, value=metrics[metric], threshold=floor)  # fmt: skip
        champ = (champion_segments or {}).get(segment)
        if champ is None:
            continue
        for metric, allowed in (seg.get("max_regression") or {}).items():
            if metric in metrics and metric in champ:
                worse = _worse_by(metric, metrics[metric], champ[metric])
                check(f"segment_regression_{metric}[{segment}]", worse <= allowed,
                      f"segment {seg.get('column')}={segment}: {metric} candidate {metrics[metric]:.4f} vs champion "
                      f"{champ[metric]:.4f} (worse by {worse:+.4f}, allowed {allowed})",
                      segment=segment, candidate=metrics[metric], champion=champ[metric], allowed=allowed)  # fmt: skip
    return failures, checks


class MlflowEvaluationGateOperator(BaseOperator):
    """Score the candidate and the current ``champion`` on the same held-out window and decide on promotion.

    :param model_name: registered model name. (templated)
    :param candidate: the training task's :class:`~mlops_provider.payloads.TrainingResult` (``model_version``,
        ``run_id``, ...), as a dict or its JSON. (templated)
    :param training_set: the candidate's :class:`~mlops_provider.payloads.TrainingSetManifest` (a dict, its JSON,
        or the snapshot's URI: the manifest is then read from ``manifest.json`` beside the data); its latest
        time slice is the evaluation window. (templated)
    :param criteria: overrides of the candidate task's defaults (:data:`DEFAULT_CRITERIA_BY_TASK`; the task is the
        version's ``mlops.task`` tag): ``min_metrics``, ``max_regression``, ``segments`` with
        ``column``/``min_rows``/``min_metrics``/``max_regression``, merged over ``[mlops] promotion_criteria``.
        A metric the task is not scored on, or a segment column the evaluation window lacks, fails the task with
        :class:`~mlops_provider.exceptions.GateConfigurationError` (not retried). (templated)
    :param holdout_fraction: size of the evaluation window; default the candidate run's ``holdout_fraction``.
    :param on_reject: ``skip`` (push the XCom, then skip: deploy and smoke test are skipped) or ``fail``
        (raise :class:`~mlops_provider.exceptions.PromotionRejectedError`).
    :param mlflow_conn_id: MLflow connection; default ``[mlops] mlflow_conn_id``. (templated)
    :param hold_promotion_lock: on ``promote``, keep the model's promotion lock for the deploy task of this DAG run
        (it releases it when it ends). Default: when a :class:`~mlops_provider.operators.kserve.ModelDeployOperator`
        is downstream; otherwise the lock is only checked, and released when the gate ends.
    :param promotion_lock_ttl: seconds the promotion lock stays valid (bounds how long a run that died holding it
        blocks others).
    """

    template_fields: Sequence[str] = ("model_name", "candidate", "training_set", "criteria", "mlflow_conn_id")
    template_fields_renderers = {"candidate": "json", "training_set": "json", "criteria": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#fdd0a2"

    def __init__(
        self,
        *,
        model_name: str,
        candidate: TrainingResult | dict[str, Any] | str,
        training_set: TrainingSetManifest | dict[str, Any] | str,
        criteria: dict[str, Any] | str | None = None,
        holdout_fraction: float | None = None,
        on_reject: str = "skip",
        mlflow_conn_id: str | None = None,
        hold_promotion_lock: bool | None = None,
        promotion_lock_ttl: float = 7200.0,
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
        self.hold_promotion_lock = hold_promotion_lock
        self.promotion_lock_ttl = promotion_lock_ttl

    @cached_property
    def hook(self) -> MlflowHook:
        """MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id)

    def resolved_criteria(self, task: str = BINARY) -> dict[str, Any]:
        """The ``task``'s defaults, then ``[mlops] promotion_criteria``, then the ``criteria`` argument; validated.

        :raises GateConfigurationError: when a criterion names a metric of another task.
        """
        from mlops_provider.settings import get_settings

        if task not in DEFAULT_CRITERIA_BY_TASK:
            raise GateConfigurationError(f"unknown task {task!r}; the gate knows {list(TASKS)}", task=task)
        base = merge_criteria(DEFAULT_CRITERIA_BY_TASK[task], get_settings().promotion_criteria or None)
        criteria = merge_criteria(base, parse_payload(self.criteria, name="criteria", required=False) or None)
        validate_criteria(criteria, task)
        return criteria

    # ------------------------------------------------------------------ scoring
    def _load_model(self, version: ModelVersion, workdir: str) -> tuple[Any, list[str], float]:
        """Load a version's xgboost model; return ``(booster, feature_names, threshold)``."""
        booster = self.hook.load_xgboost_model(self.model_name, version.version, workdir=workdir)
        features = list(booster.feature_names or [])
        return booster, features, self.hook.version_threshold(self.model_name, version)

    def _task(self, version: ModelVersion, booster: Any) -> str:
        """The candidate's task: its ``mlops.task`` lineage tag, else the booster's own (binary before task types)."""
        from mlops_provider.lineage import booster_task

        return (version.tags or {}).get(TASK_TAG) or booster_task(booster)[0]

    def _score(
        self, booster: Any, features: list[str], window: Any, label: str, threshold: float, segment: dict[str, Any]
    ) -> tuple[dict[str, float], dict[str, dict[str, float]] | None]:
        from mlops_provider.lineage import booster_task
        from mlops_provider.training.evaluation import booster_predict, segment_metrics, task_metrics

        task, classes = booster_task(booster)
        # Categorical features go through the model's frozen categories, as in the trainer and the model server.
        p = booster_predict(booster, window, features)
        if task == MULTICLASS:
            index = {str(c): i for i, c in enumerate(classes or range(p.shape[1]))}
            y = window[label].map(lambda v: index.get(str(v), -1)).astype(int).to_numpy()
        elif task == REGRESSION:
            y = window[label].astype(float).to_numpy()
        else:
            y = window[label].astype(int).to_numpy()
        metrics = task_metrics(task, y, p, threshold=threshold, what="evaluation window")
        segments = None
        column = segment.get("column")
        if column and column in window.columns:
            segments = segment_metrics(
                window, y, p, column, threshold, min_rows=int(segment.get("min_rows", 1)), task=task
            )
        return metrics, segments

    def _manifest(self) -> TrainingSetManifest:
        """The training-set manifest: the argument, completed from ``manifest.json`` next to its data.

        A bare URI (the snapshot folder or its ``data.parquet``) is accepted too.
        """
        value = self.training_set
        if isinstance(value, str) and value.strip() and not value.strip().startswith("{"):
            value = {"uri": value.strip()}
        manifest = parse_payload(value, name="training_set")
        if not manifest.get("label_column") or not manifest.get("timestamp_column"):
            from mlops_provider.storage import storage_path

            if not manifest.get("uri"):
                raise PromotionRejectedError(
                    f"training_set has no uri to read the manifest from (got {manifest!r})",
                    reasons=["no training set"],
                )
            uri = str(manifest["uri"]).rstrip("/")
            folder = uri.rsplit("/", 1)[0] if uri.endswith(".parquet") else uri
            manifest = {**json.loads(storage_path(f"{folder}/manifest.json").read_text()), **manifest}
        return cast("TrainingSetManifest", manifest)

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> GateDecision:
        """Score, decide, record the decision in MLflow and XCom; skip (or fail) on reject."""
        import tempfile

        from mlops_provider.storage import read_parquet
        from mlops_provider.training.evaluation import holdout_window

        candidate = parse_payload(self.candidate, name="candidate", required=False)
        if not candidate.get("model_version"):
            raise PromotionRejectedError(
                f"no candidate version to gate (got {candidate!r}): did the training task succeed?",
                reasons=["no candidate version"],
            )
        hook = self.hook
        cand_version = hook.get_model_version(self.model_name, str(candidate["model_version"]))
        run_id = cand_version.run_id or candidate.get("run_id")
        run = hook.get_run(run_id) if run_id else None
        manifest = self._manifest()
        label = manifest["label_column"]
        timestamp = manifest["timestamp_column"]
        fraction = self.holdout_fraction
        if fraction is None and run is not None:
            fraction = float(run.data.params.get("holdout_fraction", 0.15))
        data = read_parquet(manifest["uri"])
        window = holdout_window(data, timestamp, fraction or 0.15)
        notes: list[str] = []

        with tempfile.TemporaryDirectory(prefix="mlops-gate-") as workdir:
            booster, features, threshold = self._load_model(cand_version, f"{workdir}/candidate")
            task = self._task(cand_version, booster)
            criteria = self.resolved_criteria(task)
            check_segment_column(criteria, list(window.columns))
            segment_cfg = criteria.get("segments") or {}
            cand_metrics, cand_segments = self._score(booster, features, window, label, threshold, segment_cfg)

            champion_version: str | None = None
            champ_metrics: dict[str, float] | None = None
            champ_segments: dict[str, dict[str, float]] | None = None
            champion = hook.get_version_by_alias(self.model_name, CHAMPION)
            if champion is None:
                notes.append("no champion yet: first model, gated on the absolute criteria only")
            elif str(champion.version) == str(cand_version.version):
                champion_version = str(champion.version)
                notes.append(f"candidate version {champion.version} already is the champion")
            else:
                champion_version = str(champion.version)
                try:
                    champ_booster, champ_features, champ_threshold = self._load_model(champion, f"{workdir}/champion")
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
        result: GateDecision = {
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
            "task": task,
            "evaluation_window": {
                "rows": len(window),
                "start": str(window[timestamp].min()),
                "end": str(window[timestamp].max()),
                "holdout_fraction": fraction,
                "training_set_uri": manifest.get("uri"),
                "training_set_hash": manifest.get("hash"),
            },
            "model_uri": f"models:/{self.model_name}/{cand_version.version}",
            "artifact_uri": hook.version_download_uri(self.model_name, cand_version.version),
            "run_id": run_id,
            "decided_at": datetime.now(UTC).isoformat(),
        }
        if decision == "promote":
            self._claim_promotion(context, result)
        self._record(result)
        record_audit(GATE_DECISION, self.model_name, outcome=decision, reason="; ".join(reasons), context=context,
                     subject=cand_version.version, details={k: v for k, v in result.items() if k != "reasons"},
                     links=mlflow_links(hook, self.model_name, cand_version.version, run))  # fmt: skip
        if decision == "promote":
            hook.set_alias(self.model_name, CHALLENGER, cand_version.version)
            fault_point("gate.after_decision")
        persist_mlflow_links(
            context,
            hook,
            experiment_id=run.info.experiment_id if run is not None else None,
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

    def _claim_promotion(self, context: Context, result: GateDecision) -> None:
        """Take the model's promotion lock for this DAG run and check ``champion`` is still what was compared.

        Held until the deploy task of the same run ends (see :mod:`mlops_provider.serving.promotion`); a run that
        loses the race fails here with :class:`~mlops_provider.exceptions.PromotionConflictError`, before
        ``challenger`` moves.
        """
        from mlops_provider.serving.promotion import Promotion

        ti = context["ti"]
        promotion = Promotion(
            self.hook,
            self.model_name,
            result["candidate_version"],
            f"{ti.dag_id}/{ti.run_id}",
            expected_champion=result["champion_version"],
            lock_ttl=self.promotion_lock_ttl,
        )
        promotion.begin()
        if not self._deploy_follows():
            promotion.lock.release()

    def _deploy_follows(self) -> bool:
        """Whether the deploy task that releases the promotion lock runs after this gate."""
        if self.hold_promotion_lock is not None:
            return self.hold_promotion_lock
        from mlops_provider.operators.kserve import ModelDeployOperator

        try:
            relatives = self.get_flat_relatives(upstream=False)
        except Exception:  # not in a DAG (called directly): nobody would release it
            return False
        return any(isinstance(task, ModelDeployOperator) for task in relatives)

    def _record(self, result: GateDecision) -> None:
        """Tags on the version and the run, plus ``gate/decision.json`` on the run."""
        tags = {
            GATE_DECISION_TAG: result["decision"],
            GATE_REASONS_TAG: "; ".join(result["reasons"])[:4900],
            GATE_CHAMPION_VERSION_TAG: str(result["champion_version"] or ""),
            GATE_DECIDED_AT_TAG: result["decided_at"],
        }
        run_id = result.get("run_id")
        self.hook.set_version_tags(self.model_name, result["candidate_version"], tags, run_id=run_id)
        if run_id:
            self.hook.log_dict(run_id, result, "gate/decision.json")
