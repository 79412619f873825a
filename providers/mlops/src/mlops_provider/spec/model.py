"""The parsed model spec: frozen dataclasses built by :func:`mlops_provider.spec.load.load_spec`.

Standard library only: DAG files import this module through the DAG factory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

TASKS = ("binary", "multiclass", "regression")
ENTITY_TYPES = ("int64", "string")
SOURCE_FORMATS = ("auto", "parquet", "csv", "jsonl")
#: Aggregate functions a spec may declare (``count``/``sum``/``mean`` plus the null-aware ones).
AGGREGATE_FUNCTIONS = ("count", "sum", "mean", "last", "min", "max", "std", "distinct_count")
STATIC_FEATURE_TYPES = ("int64", "float64")
DEFAULT_PARAMS_FILE = "include/trainer/params.yaml"


@dataclass(frozen=True)
class SourceSpec:
    """Where a day of the dataset lands and how it is written."""

    #: Source of a day with ``{ds}``/``{ds_nodash}``/``{dataset}``; ``None``: ``<data_root>/landing/<dataset>/dt={ds}``.
    uri: str | None = None
    format: str = "auto"
    csv_delimiter: str = ","
    conn_id: str | None = None
    #: Source column -> column name, applied at ingestion (e.g. ``"Trip ID": trip_id``), before ``derive``.
    rename: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AggregateFeature:
    """One windowed aggregate of an entity: ``function`` of ``column`` over ``window``."""

    name: str
    entity: str
    function: str
    window: str
    column: str | None = None
    label_lag: str | None = None

    @property
    def tags(self) -> dict[str, str]:
        """Field tags read by :mod:`mlops_provider.features.aggregates`."""
        tags = {"aggregation": self.function, "window": self.window}
        if self.column:
            tags["column"] = self.column
        if self.label_lag:
            tags["label_lag"] = self.label_lag
        return tags


@dataclass(frozen=True)
class StaticTable:
    """Per-entity attributes read from a Parquet table (one row per entity and ``timestamp_column``)."""

    name: str
    entity: str
    path: str
    features: dict[str, str]
    timestamp_column: str = "valid_from"


@dataclass(frozen=True)
class FeaturesSpec:
    """The model's inputs."""

    aggregates: tuple[AggregateFeature, ...] = ()
    static: tuple[StaticTable, ...] = ()
    #: Numeric columns of the event itself, used as they are.
    request: tuple[str, ...] = ()
    #: String columns of the event, model inputs as text (XGBoost native categoricals).
    categoricals: tuple[str, ...] = ()
    #: Entity keys that are model inputs too (a string key is a categorical, e.g. a carrier code).
    entity_keys: tuple[str, ...] = ()


#: Where the ``dask`` training backend's cluster runs: worker processes on the Airflow worker, or a DaskJob.
DASK_CLUSTERS = ("local", "kubernetes")


@dataclass(frozen=True)
class DaskTrainingSpec:
    """The ``training.dask`` block: the cluster the ``dask`` backend trains on.

    ``cluster: local`` starts a LocalCluster of ``n_workers`` processes (``worker_memory`` each, ``auto``: a share
    of the machine); ``cluster: kubernetes`` submits a DaskJob of ``n_workers`` worker pods with ``worker_cpu``,
    ``worker_memory`` and ``gpus_per_worker`` (``nvidia.com/gpu``) each.
    """

    cluster: str = "local"
    n_workers: int = 2
    worker_cpu: str = "4"
    worker_memory: str | None = None
    gpus_per_worker: int = 1

    @property
    def operator_options(self) -> dict[str, Any]:
        """Keyword arguments of the operator of ``cluster``."""
        if self.cluster == "local":
            return {"n_workers": self.n_workers, "worker_memory_limit": self.worker_memory or "auto"}
        return {
            "n_workers": self.n_workers,
            "worker_cpu": self.worker_cpu,
            "worker_memory": self.worker_memory or "16Gi",
            "gpus_per_worker": self.gpus_per_worker,
        }


@dataclass(frozen=True)
class TrainingSpec:
    """How the model is trained."""

    backend: str | None = None
    params_file: str = DEFAULT_PARAMS_FILE
    window_days: int = 21
    #: Only with ``backend: dask``.
    dask: DaskTrainingSpec | None = None

    @property
    def operator_options(self) -> dict[str, Any]:
        """Backend-specific keyword arguments of the training operator (none but the dask block's)."""
        return self.dask.operator_options if self.dask else {}


#: Scale metrics of an InferenceService: Knative's (Serverless) and the HPA's (RawDeployment).
SCALE_METRICS = ("concurrency", "rps", "cpu", "memory")
#: Where entity requests get their features: a Feast transformer in front of the predictor (its own processes or
#: pods, scaled and built separately), or the predictor itself (``fused``: one process, no hop, lower latency).
SERVING_MODES = ("transformer", "fused")
#: Seconds without an inference request before a ``min_replicas: 0`` model is scaled to zero on the local backend:
#: Knative's default stable window (60 s) plus its scale-to-zero grace period (30 s).
SCALE_TO_ZERO_AFTER = 90.0


@dataclass(frozen=True)
class AutoscalingSpec:
    """Replicas of the served model on KServe; the local backend runs one process, or none while idle."""

    #: 0 lets a Serverless InferenceService (or a local slot) scale to zero between sporadic requests.
    min_replicas: int = 1
    max_replicas: int = 3
    #: ``concurrency``/``rps`` (Serverless) or ``cpu``/``memory`` (RawDeployment); None: KServe's default.
    metric: str | None = None
    target: int | None = None
    #: Local backend, ``min_replicas: 0`` only: seconds without an inference request before the slot sleeps.
    scale_to_zero_after: float = SCALE_TO_ZERO_AFTER

    @property
    def manifest_options(self) -> dict[str, Any]:
        """The deploy operator's ``manifest_options`` these settings stand for.

        ``render_inference_service``'s arguments, plus the local backend's ``scale_to_zero_after`` when the model
        may scale to zero.
        """
        options: dict[str, Any] = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "scale_metric": self.metric,
            "scale_target": self.target,
        }
        if self.min_replicas == 0:
            options["scale_to_zero_after"] = self.scale_to_zero_after
        return options


@dataclass(frozen=True)
class ApprovalSpec:
    """A person approves the gate's candidate before the rollout (an Airflow human-in-the-loop task)."""

    required: bool = False
    #: How long to wait for an answer (a duration like ``24h``); no answer in time counts as a rejection.
    timeout: str = "24h"
    #: Airflow user ids allowed to answer (empty: anyone who may edit the DAG's task instances).
    assigned_users: tuple[str, ...] = ()

    @property
    def timeout_delta(self) -> timedelta:
        """``timeout`` as a timedelta."""
        return duration(self.timeout)


@dataclass(frozen=True)
class LiveAnalysisSpec:
    """Live analysis of canary and shadow steps: canary vs stable on users' traffic.

    ``ModelDeployOperator``'s ``live_analysis``; on by default: the numbers come from Prometheus when it answers (``prometheus_default``, else
    ``127.0.0.1:9090``), else from the prediction log. A step whose window holds fewer than ``min_requests``
    requests per version is ``inconclusive``: it is judged again over its growing window for ``inconclusive_wait``,
    then ``on_inconclusive`` decides: ``probes`` (default: the probes' passed verdict stands, so an endpoint with
    little traffic still rolls out, with the inconclusive live verdict recorded) or ``rollback``. A failed live
    verdict always rolls back. Blue/green deployments (the local default) are judged by the probes alone.
    """

    enabled: bool = True
    min_requests: int = 50
    on_inconclusive: str = "probes"
    inconclusive_wait: str = "5m"

    @property
    def operator_options(self) -> dict[str, Any] | None:
        """The deploy operator's ``live_analysis`` (None when disabled)."""
        if not self.enabled:
            return None
        return {
            "min_requests": self.min_requests,
            "on_inconclusive": self.on_inconclusive,
            "inconclusive_wait": duration(self.inconclusive_wait).total_seconds(),
        }


@dataclass(frozen=True)
class ServingSpec:
    """Deployment and smoke-test options (``ModelDeployOperator`` arguments)."""

    enabled: bool = True
    backend: str | None = None
    canary_traffic_percent: int = 10
    prediction_range: tuple[float, float] = (0.0, 1.0)
    max_latency_ms: float = 500.0
    max_error_rate: float = 0.0
    smoke_requests: int = 10
    autoscaling: AutoscalingSpec = field(default_factory=AutoscalingSpec)
    approval: ApprovalSpec = field(default_factory=ApprovalSpec)
    live_analysis: LiveAnalysisSpec = field(default_factory=LiveAnalysisSpec)
    #: One of :data:`SERVING_MODES`.
    mode: str = "transformer"

    @property
    def manifest_options(self) -> dict[str, Any]:
        """The InferenceService arguments (``render_inference_service``) of the serving settings."""
        return {**self.autoscaling.manifest_options, "serving_mode": self.mode}


@dataclass(frozen=True)
class DriftSpec:
    """Drift monitoring: cadence, window and policy."""

    enabled: bool = True
    schedule: str = "0 */6 * * *"
    window_days: int = 3
    policy: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchScoringSpec:
    """Batch scoring: the champion scores each window of validated data (``<model>__batch_scoring``)."""

    enabled: bool = True
    schedule: str = "@daily"
    window_days: int = 1
    backend: str = "local"


@dataclass(frozen=True)
class LabelsSpec:
    """Delayed labels: where they land, how they join the prediction log, how late they may arrive."""

    #: Folder of ``dt=<arrival day>`` partitions; ``None``: ``<data_root>/labels/<dataset>``.
    source: str | None = None
    #: ``request_id`` (labels name the answer) or ``entity_time`` (entity keys and event time).
    join: str = "request_id"
    max_delay: str = "7d"
    #: Largest gap between a label's event time and the prediction's ``served_at`` (``entity_time``).
    tolerance: str = "5m"
    #: Fewest labeled champion rows for a verdict; fewer is "inconclusive".
    min_rows: int = 200
    schedule: str = "@daily"

    @property
    def max_delay_days(self) -> int:
        """``max_delay`` in whole days, rounded up (the window is made of daily partitions)."""
        return max(1, -(-duration(self.max_delay) // timedelta(days=1)))

    @property
    def tolerance_minutes(self) -> float:
        """``tolerance`` in minutes."""
        return duration(self.tolerance) / timedelta(minutes=1)


@dataclass(frozen=True)
class ModelSpec:
    """One model: its data, features, training, gate, serving and monitoring.

    Built by :func:`mlops_provider.spec.load.load_spec`; also usable from Python by people who compose
    operators by hand (every name an operator needs is an attribute here).
    """

    name: str
    dataset: str
    #: Path of the contract file (relative to the project root) or the contract mapping itself.
    contract: str | dict[str, Any]
    entities: dict[str, str]
    timestamp_column: str
    label: str
    task: str
    features: FeaturesSpec
    feature_service: str
    source: SourceSpec = field(default_factory=SourceSpec)
    derive: dict[str, str] = field(default_factory=dict)
    description: str = ""
    owner: str = "mlops"
    tags: tuple[str, ...] = ()
    start_date: str = "2026-01-01"
    materialization_schedule: str = "@daily"
    training: TrainingSpec = field(default_factory=TrainingSpec)
    gate_criteria: dict[str, Any] = field(default_factory=dict)
    serving: ServingSpec = field(default_factory=ServingSpec)
    drift: DriftSpec = field(default_factory=DriftSpec)
    batch_scoring: BatchScoringSpec = field(default_factory=BatchScoringSpec)
    cooldown_minutes: int | None = None
    daily_cap: int | None = None
    #: Delayed labels (``None``: no ``labels:`` section, no label feedback DAG).
    labels: LabelsSpec | None = None
    #: Column -> type of the contract (``string``, ``int64``, ``float64``, ``bool``, ``timestamp``).
    column_types: dict[str, str] = field(default_factory=dict)
    #: The file the spec was read from (``None`` when built in Python).
    path: Path | None = None

    def view_name(self, part: str) -> str:
        """Name of a Feast object of this model: ``<model>__<part>`` (unique across specs in a shared repo)."""
        return f"{self.name}__{part}"

    @property
    def aggregate_views(self) -> dict[str, tuple[AggregateFeature, ...]]:
        """Aggregate feature view name -> its fields, one view per entity key (in declaration order)."""
        views: dict[str, list[AggregateFeature]] = {}
        for agg in self.features.aggregates:
            views.setdefault(self.view_name(f"{agg.entity}_aggregates"), []).append(agg)
        return {name: tuple(fields) for name, fields in views.items()}

    @property
    def static_views(self) -> dict[str, StaticTable]:
        """Static feature view name -> its table."""
        return {self.view_name(table.name): table for table in self.features.static}

    @property
    def request_view(self) -> str | None:
        """Name of the on-demand view of the request-time features (``None`` when there are none)."""
        return self.view_name("request") if self.features.request or self.features.categoricals else None

    @property
    def feature_views(self) -> list[str]:
        """Every batch (materialized) feature view of the model."""
        return [*self.aggregate_views, *self.static_views]

    @property
    def feature_columns(self) -> list[str]:
        """Feature columns of a training set built with the model's feature service, in order."""
        columns = [agg.name for agg in self.features.aggregates]
        for table in self.features.static:
            columns += list(table.features)
        columns += request_feature_names(self.features)
        columns += list(self.features.entity_keys)
        return columns


def request_feature_names(features: FeaturesSpec) -> list[str]:
    """Output names of the request-time features: ``<column>_value`` (numbers, and categoricals as strings).

    Distinct from the event's columns, which the entity frame of a training set already carries.
    """
    return [f"{c}_value" for c in features.request] + [f"{c}_value" for c in features.categoricals]


def duration(text: str) -> timedelta:
    """Turn a validated duration (``30m``, ``6h``, ``7d``, ``2w``) into a timedelta."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    return timedelta(**{units[text[-1]]: int(text[:-1])})
