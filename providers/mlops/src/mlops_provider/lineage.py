"""The lineage contract: every name that more than one process reads or writes.

The provider (Airflow workers), the trainer (a subprocess, a Kubernetes pod or a Vertex AI job) and the
model server (its own environment) all import this module, so a tag the trainer writes is the tag the
drift check reads. Pure standard library: the trainer and serving images install the provider with
``--no-deps`` and import only this.
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- registry aliases
#: Alias of the version the evaluation gate accepted and the rollout is deploying.
CHALLENGER: Final = "challenger"
#: Alias of the version the endpoint serves; moves only after a successful rollout.
CHAMPION: Final = "champion"

# ---------------------------------------------------------------- MLflow run / model-version tags
#: Idempotency key of one training attempt (never includes the Airflow try number).
IDEMPOTENCY_TAG: Final = "mlops.idempotency_key"
MODEL_URI_TAG: Final = "mlops.model_uri"
MODEL_ID_TAG: Final = "mlops.model_id"
#: Decision threshold chosen on the validation slice.
THRESHOLD_TAG: Final = "mlops.threshold"
#: ``cuda`` or ``cpu``: where the trainer ran.
DEVICE_TAG: Final = "mlops.device"
#: ``QuantileDMatrix`` or ``DMatrix``.
MATRIX_TAG: Final = "mlops.matrix"
#: Folder URI of the training-set snapshot (``<uri>/data.parquet`` + ``<uri>/manifest.json``).
TRAINING_SET_URI_TAG: Final = "mlops.training_set_uri"
TRAINING_SET_HASH_TAG: Final = "mlops.training_set_hash"
DATASET_TAG: Final = "mlops.dataset"
FEATURE_SERVICE_TAG: Final = "mlops.feature_service"
#: JSON list of ``view:feature`` references.
FEATURE_REFS_TAG: Final = "mlops.feature_refs"
WINDOW_START_TAG: Final = "mlops.window_start"
WINDOW_END_TAG: Final = "mlops.window_end"
#: The learning task of a training run and its version: one of :data:`TASKS`.
TASK_TAG: Final = "mlops.task"
#: What a run is (``training``, ``drift_check``), so runs of one experiment can be told apart.
RUN_KIND_TAG: Final = "mlops.kind"
GIT_COMMIT_TAG: Final = "mlflow.source.git.commit"
#: MLflow's own link from a nested run to its parent (what ``start_run(nested=True)`` writes).
PARENT_RUN_ID_TAG: Final = "mlflow.parentRunId"
#: ``RUN_KIND_TAG`` of a hyperparameter-search trial, a nested run of the training run that registers the model.
SEARCH_TRIAL_RUN_KIND: Final = "search_trial"
#: On a trial run: the training attempt's idempotency key (not ``IDEMPOTENCY_TAG``: a trial registers nothing).
SEARCH_KEY_TAG: Final = "mlops.search.idempotency_key"
#: On a trial run: ``COMPLETE``, ``PRUNED`` or ``FAIL`` (Optuna's trial states).
SEARCH_TRIAL_STATE_TAG: Final = "mlops.search.trial_state"
#: On the training run: the run id of the trial whose params the final model was trained with.
SEARCH_BEST_TRIAL_TAG: Final = "mlops.search.best_trial_run_id"
#: ``sha256:<digest>`` of the trainer package's sources that trained the run (``training.launch.source_digest``).
CODE_VERSION_TAG: Final = "mlops.code_version"
#: On a reproduction's run: the run it reproduced.
REPRODUCTION_OF_TAG: Final = "mlops.reproduction_of"

#: Evaluation gate outcome, on the candidate's model version and run.
GATE_DECISION_TAG: Final = "mlops.gate.decision"
GATE_REASONS_TAG: Final = "mlops.gate.reasons"
GATE_CHAMPION_VERSION_TAG: Final = "mlops.gate.champion_version"
GATE_DECIDED_AT_TAG: Final = "mlops.gate.decided_at"

#: Where the run came from in Airflow.
AIRFLOW_DAG_ID_TAG: Final = "airflow.dag_id"
AIRFLOW_RUN_ID_TAG: Final = "airflow.run_id"
AIRFLOW_TASK_ID_TAG: Final = "airflow.task_id"
AIRFLOW_TRY_NUMBER_TAG: Final = "airflow.try_number"
AIRFLOW_MAP_INDEX_TAG: Final = "airflow.map_index"

#: Tags a training run carries that a later step needs to find its data and code again.
LINEAGE_TAGS: Final = (
    IDEMPOTENCY_TAG,
    TRAINING_SET_URI_TAG,
    TRAINING_SET_HASH_TAG,
    DATASET_TAG,
    FEATURE_SERVICE_TAG,
    FEATURE_REFS_TAG,
    TASK_TAG,
    GIT_COMMIT_TAG,
    AIRFLOW_DAG_ID_TAG,
    AIRFLOW_RUN_ID_TAG,
    AIRFLOW_TASK_ID_TAG,
)

#: Artifact path of the training-set manifest inside a training run.
TRAINING_SET_MANIFEST_ARTIFACT: Final = "training_set/manifest.json"
#: Artifact path of the trainer's resolved parameters (defaults merged with the params file, seed included).
TRAINING_PARAMS_ARTIFACT: Final = "training/params.json"
#: Artifact path of the frozen category mapping (``{column: [category, ...]}``) inside a training run that has
#: categorical features (the model file carries the same mapping in ``BOOSTER_CATEGORIES_ATTR``).
CATEGORIES_ARTIFACT: Final = "categories.json"

# ---------------------------------------------------------------- learning tasks
#: Learning tasks the trainer, the gate, the model server and the drift check support. The trainer's params file
#: chooses one (``task``); the trainer records it as ``TASK_TAG`` and in the booster's attributes.
BINARY: Final = "binary"
MULTICLASS: Final = "multiclass"
REGRESSION: Final = "regression"
TASKS: Final = (BINARY, MULTICLASS, REGRESSION)
#: XGBoost objective of each task.
TASK_OBJECTIVES: Final = {BINARY: "binary:logistic", MULTICLASS: "multi:softprob", REGRESSION: "reg:squarederror"}
#: Booster attributes (saved with the model) that carry the task and, for multiclass, the JSON list of class labels
#: in the order of the probability columns; the model server and the gate read them from the model file.
BOOSTER_TASK_ATTR: Final = "mlops_task"
BOOSTER_CLASSES_ATTR: Final = "mlops_classes"
#: Booster attribute with the frozen category mapping of the categorical features: a JSON object
#: ``{column: [category, ...]}``; category ``i`` of a column is code ``i`` in the model (XGBoost native
#: categoricals). Every process that scores the model (trainer, gate, model server, drift check) maps values
#: through it; a value not in the list, or a null, is missing (NaN).
BOOSTER_CATEGORIES_ATTR: Final = "mlops_categories"


def task_of_objective(objective: str) -> str:
    """Return the task an XGBoost objective name belongs to (``binary:*``, ``multi:*``, anything else regression)."""
    if objective.startswith("binary:"):
        return BINARY
    if objective.startswith("multi:"):
        return MULTICLASS
    return REGRESSION


def booster_task(booster: object) -> tuple[str, list | None]:
    """Return ``(task, classes)`` of an XGBoost booster: its attributes, else its objective (``classes`` None).

    Models trained before the task attributes existed are binary classifiers or are told apart by objective.
    """
    import json

    attr = getattr(booster, "attr", None)
    task = attr(BOOSTER_TASK_ATTR) if callable(attr) else None
    classes_json = attr(BOOSTER_CLASSES_ATTR) if callable(attr) else None
    if not task:
        try:
            config = json.loads(booster.save_config())  # type: ignore[attr-defined]
            task = task_of_objective(str(config["learner"]["objective"]["name"]))
        except Exception:  # not a Booster (a wrapper or a stub): the historical default
            task = BINARY
    return task, (json.loads(classes_json) if classes_json else None)


def booster_categories(booster: object) -> dict[str, list[str]]:
    """Return the frozen category mapping of a booster (``{}``: no categorical features, or an older model)."""
    import json

    attr = getattr(booster, "attr", None)
    raw = attr(BOOSTER_CATEGORIES_ATTR) if callable(attr) else None
    if not raw:
        return {}
    return {str(column): [str(c) for c in categories] for column, categories in json.loads(raw).items()}


# ---------------------------------------------------------------- trainer process protocol
#: Module the trainer runs as (``python -m <TRAINER_MODULE>``) in every backend.
TRAINER_MODULE: Final = "include.trainer"
#: The trainer prints one ``<RESULT_MARKER><json>`` line with its result ...
RESULT_MARKER: Final = "MLOPS_TRAINING_RESULT="
#: ... or one ``<ERROR_MARKER><message>`` line and exits with ``EXIT_TRAINING_ERROR``.
ERROR_MARKER: Final = "MLOPS_TRAINING_ERROR="
#: Exit code for a training error that a retry cannot fix (bad data, bad params).
EXIT_TRAINING_ERROR: Final = 2

# ---------------------------------------------------------------- Kubernetes labels and annotations
LABEL_DOMAIN: Final = "mlops.example.com"
MODEL_NAME_LABEL: Final = f"{LABEL_DOMAIN}/model-name"
MODEL_VERSION_LABEL: Final = f"{LABEL_DOMAIN}/model-version"
#: Annotation on an InferenceService naming the registry version it serves.
MODEL_VERSION_ANNOTATION: Final = MODEL_VERSION_LABEL
MANAGED_BY: Final = "airflow-provider-mlops"


def last_marked_line(lines: str | list[str], marker: str) -> str | None:
    """Return what follows ``marker`` on the last line that carries it, or None."""
    found = None
    for line in lines.splitlines() if isinstance(lines, str) else lines:
        head, sep, tail = line.partition(marker)
        if sep:
            found = tail.strip()
    return found


# ---------------------------------------------------------------- promotion (gate -> deploy -> champion)
#: Prefix of the registered-model tags that hold the promotion lock: one tag per contender
#: (``<prefix><hash of owner>``) whose value is ``{"owner": "<dag_id>/<run_id>", "expires_at": <unix time>}``.
PROMOTION_LOCK_TAG_PREFIX: Final = "mlops.promotion_lock."
#: Outcome of the rollout of a model version: ``promoted``, ``rolled_back``, ``failed``, ``killed``.
ROLLOUT_STATUS_TAG: Final = "mlops.rollout.status"
#: Why the rollout ended as it did (the rollout's reason, e.g. ``AnalysisFailed``), and its message.
ROLLOUT_REASON_TAG: Final = "mlops.rollout.reason"
ROLLOUT_MESSAGE_TAG: Final = "mlops.rollout.message"
ROLLOUT_UPDATED_AT_TAG: Final = "mlops.rollout.updated_at"
