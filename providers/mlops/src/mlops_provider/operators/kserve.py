"""Roll a registered model version out to its endpoint (KServe canary or local blue/green) and smoke-test it.

The operators orchestrate; the domain lives in :mod:`mlops_provider.serving`: the KServe rollout state machine
in :mod:`~mlops_provider.serving.rollout`, the local blue/green backend in :mod:`~mlops_provider.serving.local`,
the checks in :mod:`~mlops_provider.serving.analysis`, the manifests in :mod:`~mlops_provider.serving.manifests`.
Only after promotion does the MLflow alias ``champion`` move to the new version.

The smoke test operator stays here: it is small and checks the endpoint this module's deploy task rolled out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider.audit import PROMOTION, ROLLBACK, mlflow_links, record_audit
from mlops_provider.exceptions import MlopsError, RolloutFailedError, RolloutRolledBackError
from mlops_provider.lineage import BINARY, REGRESSION, TASK_TAG
from mlops_provider.links.kserve import KServeEndpointLink
from mlops_provider.payloads import parse_payload
from mlops_provider.serving.local import LOCAL_STRATEGIES
from mlops_provider.utils.deferrable import default_deferrable
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.kserve import KServeHook
    from mlops_provider.hooks.mlflow import MlflowHook
    from mlops_provider.payloads import DeployResult
    from mlops_provider.serving.analysis import AnalysisConfig
    from mlops_provider.serving.live_analysis import LiveAnalysisConfig
    from mlops_provider.serving.local import BlueGreenRollout
    from mlops_provider.serving.promotion import Promotion
    from mlops_provider.serving.rollout import KServeRolloutManager, RolloutState
    from mlops_provider.settings import MlopsSettings


class ModelDeployOperator(BaseOperator):
    """Deploy the candidate the evaluation gate approved; promote it to ``champion`` only after a healthy rollout.

    ``backend="kserve"``: create or patch the InferenceService; the first deployment goes straight to 100 %, a
    new version goes out as a canary at ``canary_traffic_percent`` (optionally stepped by ``step_weight`` up to
    ``max_weight``), is analysed, then promoted (100 %) or rolled back (traffic to the previous revision, spec
    back to the previous model); see :class:`~mlops_provider.serving.rollout.KServeRolloutManager`.
    ``backend="local"``: start the new version next to the live one on this machine. ``strategy="blue_green"``
    (default) analyses it, then switches the stable endpoint or discards it
    (:class:`~mlops_provider.serving.local.BlueGreenRollout`); ``strategy="canary"`` sends it the canary weights
    of live traffic step by step, ``strategy="shadow"`` mirrors live traffic to it first, each step judged by
    ``judge`` (:class:`~mlops_provider.serving.local.ProgressiveRollout`).

    The Feast transformer in front of the model looks features up through the FeatureService the model was
    trained on: ``feature_service``, else the version's ``mlops.feature_service`` lineage tag (the registry is the
    system of record; then its run's tag and training-set manifest), else the one in ``training_set``, else the
    manifest beside the gate's ``evaluation_window.training_set_uri``.

    Returns a :class:`~mlops_provider.payloads.DeployResult`. A rollback pushes that XCom
    (``status="rolled_back"``) and fails the task with :class:`~mlops_provider.exceptions.RolloutRolledBackError`
    (no retries).

    Promotion (:mod:`~mlops_provider.serving.promotion`): the task takes the registry-held promotion lock of the
    model (the gate of the same DAG run took it first), checks that ``champion`` is still the version the gate
    compared against, and moves ``champion`` only after a passed analysis of the version is recorded in the
    endpoint's state. Every outcome is tagged on the version (``mlops.rollout.status``); a final failure removes
    ``challenger`` from it. ``on_kill`` rolls an unfinished canary back (local: stops the candidate).

    :param model_name: registered model name. (templated)
    :param candidate: the evaluation gate's XCom (``candidate_version``, ``artifact_uri``, ``decision``) or the
        training XCom (``model_version``, ``artifact_uri``). (templated)
    :param backend: ``local`` or ``kserve``; default ``[mlops] serving_backend``. (templated)
    :param storage_uri: override of the model location; default the candidate's ``artifact_uri``. (templated)
    :param feature_service: the model's Feast FeatureService; default from its training-set lineage. (templated)
    :param inference_service_name: default the model name as a DNS label. (templated)
    :param namespace: default ``[mlops] namespace``. (templated)
    :param kubernetes_conn_id: default ``[mlops] kubernetes_conn_id``. (templated)
    :param mlflow_conn_id: default ``[mlops] mlflow_conn_id``. (templated)
    :param endpoint_url: URL the analysis sends requests to; default the per-revision (tag) URL KServe reports
        for the canary, else ``status.url``. (templated)
    :param canary_traffic_percent: the canary's first traffic share.
    :param step_weight: raise the share by this much after each passing step (0: one step).
    :param max_weight: largest canary share before promotion.
    :param analysis_interval: seconds between checks.
    :param analysis_iterations: passing checks per step.
    :param failure_threshold: failed checks that trigger a rollback.
    :param progress_deadline: seconds the whole rollout may take (readiness waits included).
    :param smoke_requests: requests per check.
    :param max_error_rate: largest tolerated share of failed requests per check.
    :param max_latency_ms: largest tolerated p99 latency per check.
    :param prediction_range: predictions must be finite and within this range; default ``(0, 1)`` (probabilities)
        unless the candidate's ``mlops.task`` tag says regression (then finite values only).
    :param raw_deployment_strategy: ``rolling`` or ``refuse`` when the InferenceService runs in RawDeployment mode.
    :param deployment_mode: mode of a newly created InferenceService (``Serverless`` or ``RawDeployment``).
    :param manifest_options: extra keyword arguments of
        :func:`~mlops_provider.serving.manifests.render_inference_service` (replicas, resources...); ``n_features``
        is the model's width for synthetic smoke rows.
    :param training_set: training-set manifest (``uri``, ``feature_columns``) to draw smoke rows from. (templated)
    :param local_transformer: start the Feast transformer locally (None: when the Feast repo exists).
    :param strategy: local backend: ``blue_green`` (default), ``canary`` (the canary weights above, live) or
        ``shadow`` (a shadow step, then the canary weights). KServe: the canary, after a shadow step with
        ``shadow``: a challenger InferenceService and an Istio VirtualService mirroring ``shadow_percent`` % of the
        stable predictor's requests to it, judged by ``live_analysis`` (required), then removed.
    :param shadow_percent: share of live requests mirrored to the candidate in the shadow step.
    :param step_window: seconds of live traffic before each local step is judged.
    :param step_timeout: seconds a local step may stay inconclusive before it fails (and rolls back).
    :param judge: decides each local step, called as ``judge(mode=, model_name=, stable_version=,
        candidate_version=, start=, end=, weight=)`` and returning ``{"verdict": "pass" | "fail" | "inconclusive",
        "metrics", "source", "message"}``; default: with ``live_analysis`` the live comparison of both versions
        (:func:`~mlops_provider.serving.live_analysis.judge_live_window`), else the probe analysis of the candidate.
    :param deferrable: wait for readiness in the triggerer.
    :param poll_interval: seconds between readiness reads.
    :param promotion_lock_ttl: seconds the promotion lock stays valid after this task renews it.
    :param live_analysis: judge each canary step on live traffic, canary vs stable (KServe: after the probes;
        local canary/shadow steps: the judge unless ``judge`` is given) (options of
        :class:`~mlops_provider.serving.live_analysis.LiveAnalysisConfig`: ``min_requests``, ``metrics`` as
        ``{"name", "query", "threshold", "comparison"}`` templates, ...; ``{}``: the defaults); None: probes only.
    :param prometheus_conn_id: the Prometheus connection of the live analysis (default ``prometheus_default``;
        without it the local Prometheus, else the prediction log). (templated)
    """

    template_fields: Sequence[str] = (
        "model_name",
        "candidate",
        "backend",
        "storage_uri",
        "feature_service",
        "inference_service_name",
        "namespace",
        "kubernetes_conn_id",
        "mlflow_conn_id",
        "endpoint_url",
        "training_set",
        "prometheus_conn_id",
    )
    operator_extra_links = (KServeEndpointLink(),)
    ui_color = "#c7e9f1"

    def __init__(
        self,
        *,
        model_name: str,
        candidate: dict | str,
        backend: str | None = None,
        storage_uri: str | None = None,
        feature_service: str | None = None,
        inference_service_name: str | None = None,
        namespace: str | None = None,
        kubernetes_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        endpoint_url: str | None = None,
        canary_traffic_percent: int = 10,
        step_weight: int = 0,
        max_weight: int = 50,
        analysis_interval: float = 5.0,
        analysis_iterations: int = 3,
        failure_threshold: int = 2,
        progress_deadline: float = 600.0,
        smoke_requests: int = 10,
        max_error_rate: float = 0.0,
        max_latency_ms: float = 500.0,
        prediction_range: tuple[float, float] | None = None,
        raw_deployment_strategy: str = "rolling",
        deployment_mode: str = "Serverless",
        manifest_options: dict | None = None,
        training_set: dict | str | None = None,
        local_transformer: bool | None = None,
        strategy: str | None = None,
        shadow_percent: int = 100,
        step_window: float = 30.0,
        step_timeout: float = 300.0,
        judge: Callable[..., dict[str, Any]] | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 5.0,
        promotion_lock_ttl: float = 7200.0,
        live_analysis: dict[str, Any] | None = None,
        prometheus_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < canary_traffic_percent < 100:
            raise ValueError(f"canary_traffic_percent must be between 1 and 99, got {canary_traffic_percent}.")
        if strategy is not None and strategy not in LOCAL_STRATEGIES:
            raise ValueError(f"strategy must be one of {list(LOCAL_STRATEGIES)} (or None), got {strategy!r}.")
        if not 0 < shadow_percent <= 100:
            raise ValueError(f"shadow_percent must be between 1 and 100, got {shadow_percent}.")
        if raw_deployment_strategy not in ("rolling", "refuse"):
            raise ValueError(f"raw_deployment_strategy must be 'rolling' or 'refuse', got {raw_deployment_strategy!r}.")
        self.model_name = model_name
        self.candidate = candidate
        self.backend = backend
        self.storage_uri = storage_uri
        self.feature_service = feature_service
        self.inference_service_name = inference_service_name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.endpoint_url = endpoint_url
        self.canary_traffic_percent = canary_traffic_percent
        self.step_weight = step_weight
        self.max_weight = max(max_weight, canary_traffic_percent)
        self.analysis_interval = analysis_interval
        self.analysis_iterations = analysis_iterations
        self.failure_threshold = failure_threshold
        self.progress_deadline = progress_deadline
        self.smoke_requests = smoke_requests
        self.max_error_rate = max_error_rate
        self.max_latency_ms = max_latency_ms
        self.prediction_range = (
            (float(prediction_range[0]), float(prediction_range[1])) if prediction_range is not None else None
        )
        self.raw_deployment_strategy = raw_deployment_strategy
        self.deployment_mode = deployment_mode
        self.manifest_options = manifest_options or {}
        self.training_set = training_set
        self.local_transformer = local_transformer
        self.strategy = strategy
        self.shadow_percent = shadow_percent
        self.step_window = step_window
        self.step_timeout = step_timeout
        self.judge = judge
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval
        self.promotion_lock_ttl = promotion_lock_ttl
        self.live_analysis = live_analysis
        self.prometheus_conn_id = prometheus_conn_id
        self._promotion: Promotion | None = None

    # -- collaborators -------------------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> MlopsSettings:
        """Bundle settings (read once per task)."""
        from mlops_provider.settings import get_settings

        return get_settings()

    @cached_property
    def hook(self) -> KServeHook:
        """KServe hook on the Kubernetes connection."""
        from mlops_provider.hooks.kserve import KServeHook

        return KServeHook(
            kubernetes_conn_id=self.kubernetes_conn_id or self.settings.kubernetes_conn_id,
            namespace=self.namespace or self.settings.namespace,
        )

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        """MLflow hook (registry aliases, lineage)."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id or self.settings.mlflow_conn_id)

    def _analysis_config(self) -> AnalysisConfig:
        from mlops_provider.serving.analysis import AnalysisConfig

        return AnalysisConfig(
            interval=self.analysis_interval,
            iterations=self.analysis_iterations,
            failure_threshold=self.failure_threshold,
            requests=self.smoke_requests,
            max_error_rate=self.max_error_rate,
            max_latency_ms=self.max_latency_ms,
            prediction_range=self.prediction_range or prediction_range_of(self._candidate_task),
            n_features=self.manifest_options.get("n_features"),
        )

    @cached_property
    def _candidate_task(self) -> str:
        """The candidate's task (its version's ``mlops.task`` tag; binary when the registry does not say)."""
        try:
            version = self.mlflow_hook.get_model_version(self.model_name, self._candidate()["version"])
            return (version.tags or {}).get(TASK_TAG) or BINARY
        except Exception as exc:  # the analysis then checks probabilities, and says so when values fall outside
            self.log.warning("Task of %s's candidate unknown (%s): analysing it as %s.", self.model_name, exc, BINARY)
            return BINARY

    @cached_property
    def rollout_manager(self) -> KServeRolloutManager:
        """The KServe rollout manager for this task."""
        from mlops_provider.serving.rollout import KServeRolloutManager

        return KServeRolloutManager(
            self.hook,
            model_name=self.model_name,
            analysis=self._analysis_config(),
            progress_deadline=self.progress_deadline,
            raw_deployment_strategy=self.raw_deployment_strategy,
            deployment_mode=self.deployment_mode,
            endpoint_url=self.endpoint_url,
            training_set=self.training_set,
            settings=self.settings,
            live_analysis=self._live_analysis_config(),
            shadow_percent=self.shadow_percent if self.strategy == "shadow" else None,
        )

    def _live_analysis_config(self) -> LiveAnalysisConfig | None:
        """The live analysis' settings from ``live_analysis`` and ``prometheus_conn_id`` (None: probes only)."""
        if self.live_analysis is None:
            return None
        from mlops_provider.serving.live_analysis import LiveAnalysisConfig

        options = dict(self.live_analysis)
        if self.prometheus_conn_id:
            options["prometheus_conn_id"] = self.prometheus_conn_id
        try:
            return LiveAnalysisConfig.from_dict(options)
        except (TypeError, ValueError) as exc:
            raise MlopsError(f"{self.task_id}: invalid live_analysis {self.live_analysis!r}: {exc}") from None

    @property
    def _isvc_name(self) -> str:
        from mlops_provider.serving.manifests import k8s_name

        return self.inference_service_name or k8s_name(self.model_name)

    # -- inputs --------------------------------------------------------------------------------------------------------
    def _candidate(self) -> dict[str, Any]:
        candidate = parse_payload(self.candidate, name="candidate")
        if candidate.get("decision") == "reject":
            raise AirflowSkipException(f"The evaluation gate rejected version {candidate.get('candidate_version')}.")
        version = candidate.get("candidate_version") or candidate.get("model_version")
        storage_uri = self.storage_uri or candidate.get("artifact_uri") or candidate.get("model_uri")
        if not version or not storage_uri:
            raise MlopsError(
                "candidate lacks the model version or its storage URI (expected candidate_version/model_version and "
                f"artifact_uri); got keys {sorted(candidate)}."
            )
        return {**candidate, "version": str(version), "storage_uri": storage_uri}

    def _feature_service(self, candidate: dict[str, Any]) -> str | None:
        """The FeatureService the candidate was trained on: the caller's, else the version's lineage.

        The registry is the system of record: the version's ``mlops.feature_service`` tag (then its run's tag and
        training-set manifest, see :meth:`~mlops_provider.hooks.mlflow.MlflowHook.feature_service_of_version`).
        Without a registry answer, the ``training_set`` manifest, then the manifest beside the candidate's
        training set.
        """
        if self.feature_service:
            return self.feature_service
        try:
            version = self.mlflow_hook.get_model_version(self.model_name, candidate["version"])
            service = self.mlflow_hook.feature_service_of_version(version)
        except Exception as exc:  # a registry hiccup must not hide the manifests below
            self.log.warning("No feature_service from the registry for %s: %s", self.model_name, exc)
            service = None
        if service:
            return service
        manifest = parse_payload(self.training_set, name="training_set", required=False)
        if manifest.get("feature_service"):
            return str(manifest["feature_service"])
        uri = (candidate.get("evaluation_window") or {}).get("training_set_uri") or candidate.get("training_set_uri")
        if uri:
            import json

            from mlops_provider.storage import storage_path

            folder = storage_path(uri)
            path = (folder if folder.is_dir() else folder.parent) / "manifest.json"
            if path.exists():
                service = json.loads(path.read_text()).get("feature_service")
                if service:
                    return str(service)
        if candidate.get("run_id"):  # the candidate's run records its training set even without a version
            service = self.mlflow_hook.training_set_of_run(candidate["run_id"])[1].get("feature_service")
            if service:
                return str(service)
        return None

    def _begin_promotion(self, context: Context, candidate: dict[str, Any]) -> Promotion:
        """Take the promotion lock and check ``champion`` against the gate's before anything changes."""
        from mlops_provider.serving.promotion import UNKNOWN, Promotion

        ti = context["ti"]
        promotion = Promotion(
            self.mlflow_hook,
            self.model_name,
            candidate["version"],
            f"{ti.dag_id}/{ti.run_id}",
            # Only the gate's decision says which champion it compared against.
            expected_champion=candidate["champion_version"] if "champion_version" in candidate else UNKNOWN,
            lock_ttl=self.promotion_lock_ttl,
        )
        promotion.begin()
        self._promotion = promotion
        return promotion

    def _backend(self) -> str:
        backend = self.backend or self.settings.serving_backend
        if backend not in ("local", "kserve"):
            raise MlopsError(f"backend must be 'local' or 'kserve', got {backend!r}.")
        if backend == "kserve" and self.strategy not in (None, "canary", "shadow"):
            raise MlopsError(
                f"strategy={self.strategy!r} runs on the local backend only; the KServe backend rolls out as a "
                "canary, optionally after a shadow (leave strategy unset, or pass 'canary' or 'shadow')."
            )
        if backend == "kserve" and self.strategy == "shadow" and self.live_analysis is None:
            raise MlopsError(
                f"{self.task_id}: strategy='shadow' on KServe is judged on the mirrored traffic: set live_analysis "
                "(e.g. {}) for its defaults."
            )
        return backend

    def _verified(self, result: DeployResult) -> bool:
        """Whether the endpoint's own state records a passed analysis of the promoted version (I1)."""
        if result["backend"] == "local":
            return self._local_rollout().verified(result["model_version"])
        state = self.rollout_manager.recover(self._isvc_name)
        return state is not None and state.verified and state.version == result["model_version"]

    # -- outcome -------------------------------------------------------------------------------------------------------
    def _finish(self, context: Context, result: DeployResult, promotion: Promotion) -> DeployResult:
        result = {**result, "task": self._candidate_task}
        KServeEndpointLink.persist(context, endpoint_url=result["endpoint_url"], model_name=result["model_name"])
        if result["status"] == "promoted":
            fault_point("deploy.before_promote")
            promotion.promote(verified=self._verified(result))
            self._audit(context, PROMOTION, result, f"passed the {result.get('strategy')} rollout analysis on "
                        f"{result['backend']}; champion moved from {result.get('previous_version') or 'none'}")  # fmt: skip
            return result
        context["ti"].xcom_push(key="return_value", value=result)
        message = (
            f"Rollout of {result['model_name']} version {result['model_version']} was rolled back "
            f"({result.get('reason')}): {result.get('message')} The previous version keeps serving at "
            f"{result['endpoint_url']}."
        )
        promotion.failed("rolled_back", result.get("reason"), message, final=True)
        self._audit(context, ROLLBACK, result, message)
        raise RolloutRolledBackError(message, reason=result.get("reason"), rolled_back=True)

    def _audit(self, context: Context, kind: str, result: DeployResult, reason: str) -> None:
        """Append the rollout's outcome (promotion or rollback) to the audit log, with the version and endpoint.

        The outcome is already final in the registry (``champion``, ``mlops.rollout.status``), and a retry could not
        redo it, so a failed write is logged as an error rather than failing the task.
        """
        links = mlflow_links(self.mlflow_hook, self.model_name, result["model_version"])
        links["endpoint"] = f"{result['endpoint_url'].rstrip('/')}/v2/models/{result['model_name']}"
        try:
            record_audit(kind, self.model_name, outcome=result["status"], reason=reason, context=context,
                         subject=result["model_version"], details=dict(result), links=links)  # fmt: skip
        except Exception:
            self.log.exception("Could not write the %s audit entry of %s v%s.", kind, self.model_name,
                               result["model_version"])  # fmt: skip

    def _guarded(self, context: Context, promotion: Promotion, run: Any) -> DeployResult:
        """Run ``run()``; record any failure on the version (a final one also drops ``challenger``)."""
        from airflow.sdk.exceptions import AirflowFailException

        try:
            return run()
        except RolloutRolledBackError:
            raise  # recorded by _finish
        except Exception as exc:
            final = isinstance(exc, AirflowFailException) or context["ti"].try_number > (self.retries or 0)
            promotion.failed("failed", getattr(exc, "reason", None) or type(exc).__name__, str(exc), final=final)
            raise

    # -- entry points --------------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> DeployResult:
        """Deploy the candidate with the configured backend."""
        candidate = self._candidate()
        backend = self._backend()
        if backend != "local":
            from mlops_provider.reachability import ARTIFACT_STORE_SETTING, require_cluster_reachable

            require_cluster_reachable(
                candidate["storage_uri"],
                what=f"artifacts of version {candidate['version']}",
                reader=f"The InferenceService of {self.model_name}",
                setting=ARTIFACT_STORE_SETTING,
            )
        promotion = self._begin_promotion(context, candidate)
        return self._guarded(context, promotion, lambda: self._deploy(context, candidate, backend, promotion))

    def _deploy(self, context: Context, candidate: dict[str, Any], backend: str, promotion: Promotion) -> DeployResult:
        feature_service = self._feature_service(candidate)
        if backend == "local":
            return self._finish(context, self._deploy_local(candidate, feature_service), promotion)
        from mlops_provider.serving.rollout import canary_weights

        options = {**self.manifest_options}
        options.pop("n_features", None)
        # The local backend's idle window; on KServe, Knative's autoscaler settings decide when to scale to zero.
        options.pop("scale_to_zero_after", None)
        if options.get("transformer", True):
            if not feature_service:
                raise MlopsError(
                    f"Cannot render the Feast transformer of {self.model_name}: no feature_service given and none in "
                    "the candidate's training-set lineage (evaluation_window.training_set_uri or the run's "
                    "mlops.training_set_uri). Pass feature_service, or manifest_options={'transformer': False}."
                )
            options["feature_service"] = feature_service
        state = self.rollout_manager.start(
            name=self._isvc_name,
            version=candidate["version"],
            storage_uri=candidate["storage_uri"],
            weights=canary_weights(self.canary_traffic_percent, self.step_weight, self.max_weight),
            manifest_options=options,
        )
        return self._drive(context, state)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> DeployResult:
        """Resume after the readiness trigger: the rollout state comes from the InferenceService's annotation."""
        promotion = self._begin_promotion(context, self._candidate())

        def resume() -> DeployResult:
            # The state lives on the stable InferenceService even when the wait was on the shadow's challenger.
            name = self._isvc_name
            state = self.rollout_manager.recover(name)
            if state is None:
                raise RolloutFailedError(
                    f"InferenceService {self.hook.namespace}/{name} carries no rollout state after the wait "
                    f"({event.get('status')}: {event.get('reason')}); it was changed or deleted by someone else.",
                    reason="RolloutStateLost",
                )
            return self._drive(context, self.rollout_manager.advance(state, event))

        return self._guarded(context, promotion, resume)

    def on_kill(self) -> None:
        """Take back an unfinished rollout: KServe canary to the previous model, local candidate stopped; record it."""
        try:
            if self._backend() == "local":
                aborted = self._local_rollout().abort()
                detail = f"stopped the local candidate {aborted.get('color')}" if aborted else "no local candidate"
            else:
                state = self.rollout_manager.abort(self._isvc_name)
                detail = f"rollout left in phase {state.phase}" if state is not None else "no rollout recorded"
            self.log.warning("Deploy task killed: %s.", detail)
        finally:
            if self._promotion is not None:
                self._promotion.failed("killed", "TaskKilled", "The deploy task was killed.", final=False)

    def _drive(self, context: Context, state: RolloutState) -> DeployResult:
        """Wait for readiness (here or in the triggerer) and advance until the rollout is over."""
        manager = self.rollout_manager
        while not state.phase.terminal:
            if self.deferrable:
                event = manager.check(state)  # check once before deferring
                if event["status"] not in ("ready", "failed"):
                    from mlops_provider.triggers.kserve import InferenceServiceReadyTrigger

                    self.defer(
                        trigger=InferenceServiceReadyTrigger(
                            name=state.ready_target,
                            namespace=state.namespace,
                            kubernetes_conn_id=self.hook.kubernetes_conn_id,
                            generation=state.generation,
                            deadline=state.deadline,
                            poll_interval=self.poll_interval,
                        ),
                        method_name="execute_complete",
                    )
            else:
                event = manager.wait(state, self.poll_interval)
            state = manager.advance(state, event)
        return self._finish(context, manager.result(state), self._promotion_or_fail())

    def _promotion_or_fail(self) -> Promotion:
        if self._promotion is None:
            raise MlopsError("The promotion was not begun (no lock, no champion check): internal error.")
        return self._promotion

    def _local_rollout(self) -> BlueGreenRollout:
        from mlops_provider.hooks.local_serving import LocalServingHook
        from mlops_provider.serving.local import BLUE_GREEN, BlueGreenRollout, ProgressiveRollout, progressive_steps
        from mlops_provider.serving.rollout import canary_weights
        from mlops_provider.spec.model import SCALE_TO_ZERO_AFTER

        endpoint = LocalServingHook(settings=self.settings)
        strategy = self.strategy or BLUE_GREEN
        # The spec's serving.mode reaches the deploy task in manifest_options; locally it picks the slot's processes.
        serving_mode = self.manifest_options.get("serving_mode", "transformer")
        # serving.autoscaling.min_replicas: 0 lets the local slot sleep when idle (woken by the next request).
        scale_to_zero_after = None
        if self.manifest_options.get("min_replicas", 1) == 0:
            scale_to_zero_after = float(self.manifest_options.get("scale_to_zero_after", SCALE_TO_ZERO_AFTER))
        if strategy == BLUE_GREEN:
            return BlueGreenRollout(
                endpoint,
                model_name=self.model_name,
                analysis=self._analysis_config(),
                progress_deadline=self.progress_deadline,
                training_set=self.training_set,
                serving_mode=serving_mode,
                scale_to_zero_after=scale_to_zero_after,
            )
        weights = canary_weights(self.canary_traffic_percent, self.step_weight, self.max_weight)
        return ProgressiveRollout(
            endpoint,
            model_name=self.model_name,
            analysis=self._analysis_config(),
            steps=progressive_steps(strategy, weights, self.shadow_percent),
            judge=self.judge or self._live_judge(),
            step_window=self.step_window,
            step_timeout=self.step_timeout,
            **self._local_inconclusive_policy(),
            strategy=strategy,
            progress_deadline=self.progress_deadline,
            training_set=self.training_set,
            serving_mode=serving_mode,
            scale_to_zero_after=scale_to_zero_after,
        )

    def _local_inconclusive_policy(self) -> dict[str, Any]:
        """``live_analysis``'s ``on_inconclusive`` and ``inconclusive_wait`` for local steps, as on KServe."""
        config = self._live_analysis_config()
        if config is None:
            return {}
        return {"on_inconclusive": config.on_inconclusive, "inconclusive_wait": config.inconclusive_wait}

    def _live_judge(self) -> Callable[..., dict[str, Any]] | None:
        """Local steps judged on live traffic when ``live_analysis`` is set (None: the probe analysis).

        Local slots are not Prometheus targets unless a connection names a Prometheus that scrapes them, so
        without ``prometheus_conn_id`` the judge reads the prediction log both versions write.
        """
        config = self._live_analysis_config()
        if config is None:
            return None
        from mlops_provider.serving.live_analysis import judge_live_window

        return partial(judge_live_window, config=config, source=None if self.prometheus_conn_id else "prediction_log")

    def _deploy_local(self, candidate: dict[str, Any], feature_service: str | None) -> DeployResult:
        from mlops_provider.serving.local import feast_config_for_serving, mlflow_env

        feast_config = feast_config_for_serving(self.local_transformer)
        if feast_config and not feature_service:
            if self.local_transformer:
                raise MlopsError(
                    f"local_transformer=True but no feature_service is known for {self.model_name}: pass it, or "
                    "deploy a candidate whose training-set lineage names it."
                )
            self.log.info(
                "No feature_service known for %s: serving the predictor without the transformer.", self.model_name
            )
            feast_config = None
        return self._local_rollout().deploy(
            candidate["version"],
            candidate["storage_uri"],
            feast_config=feast_config,
            feature_service=feature_service,
            env=mlflow_env(candidate["storage_uri"], self.mlflow_conn_id),
        )


def prediction_range_of(task: str) -> tuple[float, float]:
    """The default range of a ``task`` model's predictions: probabilities, or any finite value (regression)."""
    return (-float("inf"), float("inf")) if task == REGRESSION else (0.0, 1.0)


class ModelEndpointSmokeTestOperator(BaseOperator):
    """Send one real row through the deployed endpoint and check the answer.

    :param endpoint: the deploy task's XCom (``endpoint_url``, ``model_name``) or an endpoint URL. (templated)
    :param training_set: training-set manifest to take the row from (``uri``, ``feature_columns``); without it a
        row of zeros of the model's width is sent. (templated)
    :param model_name: model name when ``endpoint`` is a URL. (templated)
    :param prediction_range: the prediction must be finite and within this range; default ``(0, 1)`` unless the
        deploy task's XCom says the model is a regression model (then finite values only).
    :param timeout: seconds per request.
    """

    template_fields: Sequence[str] = ("endpoint", "training_set", "model_name")

    def __init__(
        self,
        *,
        endpoint: dict | str,
        training_set: dict | str | None = None,
        model_name: str | None = None,
        prediction_range: tuple[float, float] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.training_set = training_set
        self.model_name = model_name
        self.prediction_range = (
            (float(prediction_range[0]), float(prediction_range[1])) if prediction_range is not None else None
        )
        self.timeout = timeout

    def execute(self, context: Context) -> dict[str, Any]:
        """Send the row; return ``{"endpoint_url", "prediction", "latency_ms"}``."""
        from mlops_provider.serving.analysis import in_range, post_json, sample_rows

        endpoint = self.endpoint
        if isinstance(endpoint, dict) or (isinstance(endpoint, str) and endpoint.strip().startswith("{")):
            deployed = parse_payload(endpoint, name="endpoint")
            url, model_name = deployed.get("endpoint_url"), self.model_name or deployed.get("model_name")
            task = str(deployed.get("task") or BINARY)
        else:
            url, model_name, task = endpoint, self.model_name, BINARY
        prediction_range = self.prediction_range or prediction_range_of(task)
        if not url or not model_name:
            raise MlopsError(
                f"The smoke test needs an endpoint URL and a model name; got {endpoint!r} and {model_name!r}."
            )
        rows = sample_rows(url, model_name, self.training_set)
        started = time.perf_counter()
        status, body = post_json(f"{url.rstrip('/')}/v2/models/{model_name}/infer", rows.request(), self.timeout)
        latency_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            raise MlopsError(
                f"Smoke request to {url} for {model_name} answered HTTP {status or 'no response'}: {str(body)[:300]}"
            )
        try:
            prediction = float(body["outputs"][0]["data"][0])
        except (KeyError, IndexError, TypeError, ValueError):
            raise MlopsError(f"Smoke request to {url} returned a malformed V2 response: {str(body)[:300]}") from None
        if not in_range(prediction, prediction_range):
            low, high = prediction_range
            raise MlopsError(f"Smoke prediction {prediction} from {url} is outside [{low}, {high}].")
        self.log.info("Endpoint %s answered %.4f in %.1f ms", url, prediction, latency_ms)
        return {"endpoint_url": url, "prediction": prediction, "latency_ms": round(latency_ms, 2)}
