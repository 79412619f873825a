"""The DAGs of a model spec: training, feature materialization and drift monitoring.

:func:`build_dags` composes, for one :class:`~mlops_provider.spec.model.ModelSpec`, the same operators the
hand-written example DAGs compose, with every name the spec gives passed explicitly (dataset, contract,
feature service and views, timestamp column, label, entity keys through the service, model name), so no
operator falls back to a default name:

- ``<model>__training``: cooldown, ingest, validate, apply features, materialize, training set, train, gate,
  (with ``serving.approval.required``: a person approves the rollout,) deploy, smoke test; scheduled by ``validated.<dataset> | drift.<model>``;
- ``<model>__materialization``: wait for the source, ingest, validate, apply, materialize; on the spec's
  ``materialization.schedule``; its ``validated.<dataset>`` event schedules the training DAG;
- ``<model>__drift``: check drift, and when it exceeds the policy emit ``drift.<model>``; on ``drift.schedule``;
- ``<model>__batch_scoring``: the ``champion`` scores a window of validated data into ``batch_scores/<model>``
  and emits ``batch_scores.<model>``; on ``batch_scoring.schedule``.
- ``<model>__label_feedback`` (with a ``labels:`` section): join delayed labels to the prediction log, record live
  performance, and emit ``drift.<model>`` when the champion's live metric dropped more than ``max_performance_drop``
  below its holdout score; on ``labels.schedule``.

:func:`dags_from_specs` does it for every spec of a folder; a DAG file needs two lines::

    from mlops_provider.spec.dags import dags_from_specs

    globals().update(dags_from_specs())

Light at import: the operators and the spec loader only (no data or SDK libraries), so DAG files parse fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mlops_provider.assets import (
    batch_scores_asset,
    drift_asset,
    features_asset,
    model_asset,
    raw_asset,
    training_set_asset,
    validated_asset,
)
from mlops_provider.names import FEAST_REGISTRY_POOL, PROMOTION_POOL
from mlops_provider.spec.model import ModelSpec

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset

#: Suffixes of the generated DAG ids: ``<model>__<kind>``.
TRAINING, MATERIALIZATION, DRIFT, LABEL_FEEDBACK = "training", "materialization", "drift", "label_feedback"
BATCH_SCORING = "batch_scoring"
_WINDOW_START = "{{ macros.ds_add(params.as_of or (dag_run.run_after | ds), -(params.window_days - 1)) }}"
_WINDOW_END = "{{ params.as_of or (dag_run.run_after | ds) }}"
#: The gate's promotion lock without an approval step (the operators' default).
_LOCK_TTL_SECONDS = 7200.0


class SpecAssets(NamedTuple):
    """The assets of one model spec (names as in :mod:`mlops_provider.assets`)."""

    raw: Asset
    validated: Asset
    features: Asset
    training_set: Asset
    model: Asset
    drift: Asset
    batch_scores: Asset


def spec_assets(spec: ModelSpec) -> SpecAssets:
    """Return the assets of ``spec``.

    ``raw.<dataset>``, ``validated.<dataset>``, ``features.<model>``, ``training_set.<dataset>``,
    ``model.<model>``, ``drift.<model>`` and ``batch_scores.<model>``.
    """
    return SpecAssets(
        raw=raw_asset(spec.dataset),
        validated=validated_asset(spec.dataset),
        features=features_asset(spec.name),
        training_set=training_set_asset(spec.dataset),
        model=model_asset(spec.name),
        drift=drift_asset(spec.name),
        batch_scores=batch_scores_asset(spec.name),
    )


def dag_id(spec: ModelSpec, kind: str) -> str:
    """``<model>__<kind>``."""
    return f"{spec.name}__{kind}"


def _spec_dag(
    spec: ModelSpec,
    kind: str,
    *,
    schedule: Any,
    title: str,
    body: str,
    tag: str,
    retries: int,
    retry_minutes: int,
    params: dict | None = None,
) -> DAG:
    """A DAG of ``spec`` with what all its DAGs share: id, start date, one run at a time, docs, tags, retries."""
    import pendulum
    from airflow.sdk import DAG

    return DAG(
        dag_id=dag_id(spec, kind),
        schedule=schedule,
        start_date=_start_date(spec),
        catchup=False,
        max_active_runs=1,
        doc_md=_doc(spec, title, body),
        tags=["mlops", tag, spec.name, *spec.tags],
        default_args={
            "owner": spec.owner,
            "retries": retries,
            "retry_delay": pendulum.duration(minutes=retry_minutes),
        },
        params=params or {},
    )


def _start_date(spec: ModelSpec):
    import pendulum

    year, month, day = (int(p) for p in spec.start_date.split("-"))
    return pendulum.datetime(year, month, day, tz="UTC")


def _window_params(days: int, what: str) -> dict:
    from airflow.sdk import Param

    return {
        "as_of": Param("", type="string", description=f"Last day (YYYY-MM-DD) of the {what}; empty: the run's date."),
        "window_days": Param(days, type="integer", minimum=1, description=f"Days of data in the {what}."),
    }


def _doc(spec: ModelSpec, kind: str, body: str) -> str:
    source = f"`{spec.path.name}`" if spec.path else "a spec built in Python"
    return (
        f"### {spec.name}: {kind}\n\nGenerated from the model spec {source} by `mlops_provider.spec.dags`.\n\n"
        f"{spec.description.strip()}\n\n{body}\n\n"
        f"Dataset `{spec.dataset}`, timestamp `{spec.timestamp_column}`, label `{spec.label}` ({spec.task}), "
        f"entities {', '.join(f'`{k}`' for k in spec.entities)}, feature service `{spec.feature_service}`."
    )


def _ingest_kwargs(spec: ModelSpec) -> dict:
    return {
        "dataset": spec.dataset,
        "source_uri": spec.source.uri,
        "file_format": spec.source.format,
        "csv_delimiter": spec.source.csv_delimiter,
        "source_conn_id": spec.source.conn_id,
        "rename": dict(spec.source.rename),
        "derive": dict(spec.derive),
    }


def training_dag(spec: ModelSpec) -> DAG:
    """The training DAG of ``spec``: from raw data to a gated, deployed and smoke-tested model."""
    from mlops_provider.notifications import alert_notifier
    from mlops_provider.operators.feast import (
        FeastApplyOperator,
        FeastMaterializeOperator,
        FeastTrainingSetOperator,
    )
    from mlops_provider.operators.ingestion import IngestionOperator
    from mlops_provider.operators.kserve import ModelDeployOperator, ModelEndpointSmokeTestOperator
    from mlops_provider.operators.mlflow import MlflowEvaluationGateOperator
    from mlops_provider.operators.retraining import RetrainingCooldownOperator
    from mlops_provider.operators.training import training_operator_class
    from mlops_provider.operators.validation import DataValidationOperator

    assets = spec_assets(spec)
    body = (
        "Ingest and validate the training window, build the features and a point-in-time training set, train, "
        f"gate against the `champion`, deploy and smoke-test. Runs on `{assets.validated.name}` or "
        f"`{assets.drift.name}`; a cooldown keeps drift storms from becoming retraining storms."
    )
    with _spec_dag(
        spec,
        TRAINING,
        schedule=(assets.validated | assets.drift),
        title="training",
        body=body,
        tag="training",
        retries=2,
        retry_minutes=2,
        params=_window_params(spec.training.window_days, "training window"),
    ) as dag:
        cooldown = RetrainingCooldownOperator(
            task_id="retraining_cooldown",
            model_name=spec.name,
            cooldown_minutes=spec.cooldown_minutes,
            daily_cap=spec.daily_cap,
        )
        ingest = IngestionOperator(
            task_id="ingest", partition_start=_WINDOW_START, partition_end=_WINDOW_END, **_ingest_kwargs(spec)
        )
        validate = DataValidationOperator(
            task_id="validate",
            dataset=spec.dataset,
            contract=spec.contract,
            partition_start=_WINDOW_START,
            partition_end=_WINDOW_END,
        )
        apply_features = FeastApplyOperator(task_id="apply_features", pool=FEAST_REGISTRY_POOL)
        materialize = FeastMaterializeOperator(
            task_id="materialize_features",
            pool=FEAST_REGISTRY_POOL,
            start=_WINDOW_START,
            end=_WINDOW_END,
            feature_views=spec.feature_views,
        )
        training_set = FeastTrainingSetOperator(
            task_id="build_training_set",
            dataset=spec.dataset,
            feature_service=spec.feature_service,
            label_column=spec.label,
            timestamp_column=spec.timestamp_column,
            entity_features=list(spec.features.entity_keys) or None,
            partition_start=_WINDOW_START,
            partition_end=_WINDOW_END,
            outlets=[assets.training_set],
        )
        # XComArgs resolve to the manifests and results the next operators take.
        manifest: Any = training_set.output
        # The backend (the spec's, else [mlops] training_backend) picks the operator class at parse time.
        dask = spec.training.dask
        train = training_operator_class(spec.training.backend, dask_cluster=dask.cluster if dask else "local")(
            task_id="train",
            model_name=spec.name,
            training_set=manifest,
            params_file=spec.training.params_file,
            **spec.training.operator_options,
        )
        candidate: Any = train.output
        approval = spec.serving.approval if spec.serving.enabled else None
        gate = MlflowEvaluationGateOperator(
            task_id="evaluation_gate",
            model_name=spec.name,
            candidate=candidate,
            training_set=manifest,
            criteria=dict(spec.gate_criteria) or None,
            pool=PROMOTION_POOL,
            # The gate's promotion lock must outlast the wait for a person, or another run could take it meanwhile.
            promotion_lock_ttl=_LOCK_TTL_SECONDS
            + (approval.timeout_delta.total_seconds() if approval and approval.required else 0),
        )
        cooldown >> ingest >> validate >> apply_features >> materialize >> training_set
        train >> gate
        if spec.serving.enabled:
            gate_output: Any = gate.output
            deploy = ModelDeployOperator(
                task_id="deploy",
                model_name=spec.name,
                candidate=gate_output,
                backend=spec.serving.backend,
                feature_service=spec.feature_service,
                canary_traffic_percent=spec.serving.canary_traffic_percent,
                smoke_requests=spec.serving.smoke_requests,
                max_error_rate=spec.serving.max_error_rate,
                max_latency_ms=spec.serving.max_latency_ms,
                prediction_range=spec.serving.prediction_range,
                manifest_options=spec.serving.manifest_options,
                live_analysis=spec.serving.live_analysis.operator_options,
                outlets=[assets.model],
                pool=PROMOTION_POOL,
                on_failure_callback=alert_notifier(title=f"Rollout of {spec.name} failed: traffic stays where it was"),
            )
            endpoint: Any = deploy.output
            smoke_test = ModelEndpointSmokeTestOperator(
                task_id="smoke_test",
                endpoint=endpoint,
                training_set=manifest,
                model_name=spec.name,
                prediction_range=spec.serving.prediction_range,
                on_failure_callback=alert_notifier(title=f"Smoke test of the deployed {spec.name} failed"),
            )
            if approval is not None and approval.required:
                approve = approval_task(spec, gate_output)
                gate >> approve >> deploy >> smoke_test
            else:
                gate >> deploy >> smoke_test
    return dag


def approval_task(spec: ModelSpec, decision: Any) -> Any:
    """The human approval of ``spec``'s gated candidate (``serving.approval``), before the rollout."""
    from mlops_provider.operators.approval import ModelApprovalOperator

    approval = spec.serving.approval
    return ModelApprovalOperator(
        task_id="approve_rollout",
        model_name=spec.name,
        decision=decision,
        response_timeout=approval.timeout_delta,
        assigned_users=[{"id": user, "name": user} for user in approval.assigned_users] or None,
    )


def materialization_dag(spec: ModelSpec) -> DAG:
    """The materialization DAG of ``spec``: each interval's data ingested, validated and materialized."""
    from mlops_provider.operators.feast import FeastApplyOperator, FeastMaterializeOperator
    from mlops_provider.operators.ingestion import IngestionOperator
    from mlops_provider.operators.validation import DataValidationOperator
    from mlops_provider.sensors.ingestion import SourceDataSensor

    assets = spec_assets(spec)
    body = (
        "Wait for the interval's source data, ingest it into the raw zone (derived columns computed), validate it "
        f"(bad rows to quarantine) and materialize the model's feature views into the online store. Its "
        f"`{assets.validated.name}` event schedules `{dag_id(spec, TRAINING)}`."
    )
    with _spec_dag(
        spec,
        MATERIALIZATION,
        schedule=spec.materialization_schedule,
        title="feature materialization",
        body=body,
        tag="features",
        retries=3,
        retry_minutes=5,
    ) as dag:
        wait_for_source = SourceDataSensor(
            task_id="wait_for_source",
            dataset=spec.dataset,
            partition_date="{{ ds }}",
            source_uri=spec.source.uri,
            source_conn_id=spec.source.conn_id,
            timeout=6 * 60 * 60,
            mode="reschedule",
        )
        ingest = IngestionOperator(
            task_id="ingest",
            partition_start="{{ ds }}",
            partition_end="{{ ds }}",
            outlets=[assets.raw],
            **_ingest_kwargs(spec),
        )
        validate = DataValidationOperator(
            task_id="validate",
            dataset=spec.dataset,
            contract=spec.contract,
            partition_start="{{ ds }}",
            partition_end="{{ ds }}",
            outlets=[assets.validated],
        )
        apply_features = FeastApplyOperator(task_id="apply_features", pool=FEAST_REGISTRY_POOL)
        materialize = FeastMaterializeOperator(
            task_id="materialize_features",
            pool=FEAST_REGISTRY_POOL,
            start="{{ ds }}",
            end="{{ ds }}",
            feature_views=spec.feature_views,
            outlets=[assets.features],
        )
        wait_for_source >> ingest >> validate >> apply_features >> materialize
    return dag


def drift_dag(spec: ModelSpec) -> DAG:
    """The drift-monitoring DAG of ``spec``: check, and emit ``drift.<model>`` when drift exceeds the policy."""
    from mlops_provider.drift.task_group import drift_check_tasks

    assets = spec_assets(spec)
    body = (
        "Compare the latest validated window with the training set of the current `champion`; when drift exceeds "
        f"the spec's policy emit `{assets.drift.name}`, which schedules `{dag_id(spec, TRAINING)}`. Skips before "
        "the first promotion."
    )
    with _spec_dag(
        spec,
        DRIFT,
        schedule=spec.drift.schedule,
        title="drift monitoring",
        body=body,
        tag="monitoring",
        retries=2,
        retry_minutes=2,
        params=_window_params(spec.drift.window_days, "current window"),
    ) as dag:
        drift_check_tasks(
            model_name=spec.name,
            dataset=spec.dataset,
            current_start=_WINDOW_START,
            current_end=_WINDOW_END,
            drift_asset=assets.drift,
            policy=dict(spec.drift.policy) or None,
            drift_tests=dict(spec.drift.tests) or None,
        )
    return dag


def batch_scoring_dag(spec: ModelSpec) -> DAG:
    """The batch-scoring DAG of ``spec``: the champion scores a window of validated data, one partition a day."""
    from mlops_provider.operators.batch_scoring import batch_scoring_operator_class

    assets = spec_assets(spec)
    body = (
        "Score the window's validated rows with the current `champion`: features joined point in time from the "
        "offline store with the champion's feature service, exactly as its training set was built; one Parquet "
        f"partition a day under `batch_scores/{spec.name}/dt=YYYY-MM-DD/` with the entity keys, the timestamp, the "
        f"predictions, `model_version` and `request_id`. A rerun replaces the window's partitions. Emits "
        f"`{assets.batch_scores.name}`; skips before the first promotion."
    )
    with _spec_dag(
        spec,
        BATCH_SCORING,
        schedule=spec.batch_scoring.schedule,
        title="batch scoring",
        body=body,
        tag="scoring",
        retries=2,
        retry_minutes=5,
        params=_window_params(spec.batch_scoring.window_days, "scored window"),
    ) as dag:
        batch_scoring_operator_class(spec.batch_scoring.backend)(
            task_id="score_batch",
            model_name=spec.name,
            dataset=spec.dataset,
            timestamp_column=spec.timestamp_column,
            feature_service=spec.feature_service,
            partition_start=_WINDOW_START,
            partition_end=_WINDOW_END,
            outlets=[assets.batch_scores],
        )
    return dag


def label_feedback_dag(spec: ModelSpec) -> DAG:
    """The label feedback DAG of ``spec`` (which has a ``labels:`` section): live performance from delayed labels."""
    from airflow.sdk import Param

    from mlops_provider.drift.task_group import label_feedback_tasks

    labels = spec.labels
    assert labels is not None
    assets = spec_assets(spec)
    by_entity = labels.join == "entity_time"
    body = (
        f"Join the labels that arrived in the last {labels.max_delay} (by `{labels.join}`) to the endpoint's prediction "
        "log, record the live metric per model version and day (the MLOps page shows it), and compare the `champion`'s "
        f"with the holdout score its training run recorded; a drop above `max_performance_drop` on at least "
        f"{labels.min_rows} labeled rows emits `{assets.drift.name}`, which schedules `{dag_id(spec, TRAINING)}`."
    )
    with _spec_dag(
        spec,
        LABEL_FEEDBACK,
        schedule=labels.schedule,
        title="label feedback",
        body=body,
        tag="monitoring",
        retries=2,
        retry_minutes=2,
        params={
            "as_of": Param("", type="string", description="Last day (YYYY-MM-DD); empty: the run's date."),
            "min_labeled_rows": Param(
                labels.min_rows, type="integer", minimum=1, description="Fewest labeled rows for a verdict."
            ),
        },
    ) as dag:
        label_feedback_tasks(
            model_name=spec.name,
            dataset=spec.dataset,
            label_column=spec.label,
            drift_asset=assets.drift,
            as_of=_WINDOW_END,
            max_delay_days=labels.max_delay_days,
            join=labels.join,
            entity_columns=list(spec.features.entity_keys) if by_entity else (),
            timestamp_column=spec.timestamp_column if by_entity else None,
            tolerance_minutes=labels.tolerance_minutes,
            labels_uri=labels.source,
            min_labeled_rows="{{ params.min_labeled_rows }}",
            policy=dict(spec.drift.policy) or None,
        )
    return dag


def build_dags(spec: ModelSpec) -> dict[str, DAG]:
    """Return the DAGs of ``spec`` by id.

    Training, materialization, drift (unless ``drift.enabled`` is false), batch scoring (unless
    ``batch_scoring.enabled`` is false) and label feedback (with a ``labels:`` section).
    """
    dags = [training_dag(spec), materialization_dag(spec)]
    if spec.drift.enabled:
        dags.append(drift_dag(spec))
    if spec.batch_scoring.enabled:
        dags.append(batch_scoring_dag(spec))
    if spec.labels is not None:
        dags.append(label_feedback_dag(spec))
    return {d.dag_id: d for d in dags}


def dags_from_specs(folder: str | Path | None = None) -> dict[str, DAG]:
    """Return the DAGs of every spec in ``folder`` (default ``[mlops] model_specs_folder``) by id.

    :raises ModelSpecError: a spec is invalid; the message names the file, the key and what was expected.
    """
    from mlops_provider.settings import get_settings
    from mlops_provider.spec.load import load_specs

    settings = get_settings()
    dags: dict[str, DAG] = {}
    for spec in load_specs(folder or settings.model_specs_folder, settings.project_root):
        dags.update(build_dags(spec))
    return dags
