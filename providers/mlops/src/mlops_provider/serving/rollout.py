"""The KServe rollout manager: canary -> analysis -> promote, or rollback, with its state on the InferenceService.

In the spirit of cncf.kubernetes' ``PodManager``: :class:`KServeRolloutManager` owns the whole life of one rollout
behind a small API (:meth:`~KServeRolloutManager.start`, :meth:`~KServeRolloutManager.check`/
:meth:`~KServeRolloutManager.wait`, :meth:`~KServeRolloutManager.advance`, :meth:`~KServeRolloutManager.result`);
the operator only decides whether to wait in the worker or in the triggerer.

Rollout semantics follow Flagger and Argo Rollouts: after the new version is Ready, an analysis runs a check
every ``interval`` seconds (probes through the endpoint: error rate, p99 latency, prediction sanity, the answering
version; entity-keyed probes through the Feast transformer when the model has a feature service);
``iterations`` passing checks complete a step, ``failure_threshold`` failed checks roll back, optional stepped
weights raise the canary's share, and ``progress_deadline`` bounds the whole rollout.

With ``live_analysis`` each canary step is then judged on its users' traffic as well
(:func:`~mlops_provider.serving.live_analysis.judge_live_window`: canary vs stable on the step's window, from
Prometheus, else the prediction log): ``fail`` rolls back, ``inconclusive`` (too little traffic yet) is judged
again every ``interval`` seconds over the growing window and rolls back at the progress deadline, never promotes.
Every step's verdict is written as a rollout record (:class:`~mlops_provider.serving.records.RolloutRecorder`),
keyed by the rollout's ``started_at``, which the state annotation keeps so a resumed rollout writes to the same
rollout.

With ``shadow_percent`` a new version first runs as a shadow: the challenger InferenceService
(``<name>-challenger``, the new version, no transformer) is applied and, once Ready and its probes pass, the Istio
``VirtualService`` ``<name>-shadow`` (``mirror``, ``mirrorPercentage``) and its ``DestinationRule`` copy that share of
the stable predictor's requests to it. The mirrored window is judged like a canary step plus the agreement of both
versions' answers (``judge_live_window(mode="shadow")``). Pass: the mirror, its rule and the challenger are deleted,
then the canary (or raw rolling update) starts; fail, inconclusive at the deadline, or a killed task (``abort``): the
same objects are deleted and the rollout ends ``rolled_back`` without the stable InferenceService ever changing.
Applying is idempotent (create, or replace when the spec differs), so a retry after a kill resumes the shadow with
one VirtualService and one DestinationRule; after every finished rollout there are none.

KServe modes: ``canaryTrafficPercent`` splits traffic between Knative revisions, so it only works in Serverless
mode; in RawDeployment (``Standard``) mode KServe ignores it. The manager reads the mode (status, else the
``serving.kserve.io/deploymentMode`` annotation) and the traffic KServe reports in
``status.components.predictor.traffic``: a canary only counts when that traffic shows the split. In raw mode
``raw_deployment_strategy="rolling"`` rolls the Deployment (old pods serve until new ones are Ready), runs the same
analysis at full traffic and rolls back on failure; ``"refuse"`` stops before changing anything.

State lives in the system of record: every write carries the :class:`RolloutState` as the
``mlops.example.com/rollout`` annotation, in the same merge patch as the spec change, so a retried or resumed
task finds out from the cluster where the rollout was (as Flagger keeps a canary's status on the Canary object).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import RolloutFailedError
from mlops_provider.lineage import LABEL_DOMAIN, MODEL_VERSION_ANNOTATION
from mlops_provider.serving import manifests
from mlops_provider.serving.analysis import AnalysisConfig, run_analysis
from mlops_provider.serving.records import ANALYSIS, RESULT, SHADOW, RolloutRecorder
from mlops_provider.serving.status import (
    RAW_MODES,
    annotations_of,
    canary_url_of,
    deployment_mode,
    endpoint_url_of,
    evaluate_readiness,
    is_raw_mode,
    latest_revision_share,
    predictor_status,
    predictor_traffic,
    storage_uri_of,
)
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from mlops_provider.hooks.kserve import KServeHook
    from mlops_provider.payloads import DeployResult
    from mlops_provider.serving.live_analysis import LiveAnalysisConfig, LiveSource
    from mlops_provider.settings import MlopsSettings

log = logging.getLogger(__name__)

#: Annotation on the InferenceService holding the JSON of the current :class:`RolloutState`.
ROLLOUT_STATE_ANNOTATION = f"{LABEL_DOMAIN}/rollout"
#: ``reason`` of a rollback made because the deploy task was killed: the retry starts the rollout again.
KILLED_REASON = "TaskKilled"


class RolloutPhase(StrEnum):
    """Where a rollout is; the manager waits for readiness after entering each non-terminal phase."""

    #: The InferenceService was created: Ready, then analysis at full traffic; nothing to roll back to.
    FIRST = "first"
    #: The new version serves as the challenger InferenceService and an Istio VirtualService mirrors
    #: ``shadow_percent`` % of the stable predictor's requests to it: Ready, then judged; users never see its answers.
    SHADOW = "shadow"
    #: The new revision takes ``weights[step]`` percent of traffic (Serverless).
    CANARY = "canary"
    #: Raw mode: a rolling update to the new version, then analysis at full traffic.
    ROLLING = "rolling"
    #: All traffic on the new revision (after a passed canary, or an unchanged spec whose passed analysis is
    #: recorded): Ready, then done.
    PROMOTE = "promote"
    #: The InferenceService already serves the version but no passed analysis of it is recorded (a retried first
    #: deployment, an object changed by hand): Ready, then analysis at full traffic; a failure raises.
    VERIFY = "verify"
    #: The spec went back to the previous model: Ready, then done.
    ROLLBACK = "rollback"
    #: Terminal: the new version serves all traffic.
    PROMOTED = "promoted"
    #: Terminal: the previous version serves all traffic again.
    ROLLED_BACK = "rolled_back"

    @property
    def terminal(self) -> bool:
        """Whether the rollout is over."""
        return self in (RolloutPhase.PROMOTED, RolloutPhase.ROLLED_BACK)


class RolloutStrategy(StrEnum):
    """How the new version reaches traffic."""

    CREATE = "create"
    CANARY = "canary"
    SHADOW = "shadow"
    ROLLING = "rolling"
    UNCHANGED = "unchanged"


# Phases the manager may enter from each phase (the state machine, checked on every transition).
TRANSITIONS: dict[RolloutPhase, frozenset[RolloutPhase]] = {
    RolloutPhase.FIRST: frozenset({RolloutPhase.PROMOTED}),
    RolloutPhase.VERIFY: frozenset({RolloutPhase.PROMOTED}),
    # A shadow's failure (or a killed task) only removes the challenger and the mirror: users never left stable.
    RolloutPhase.SHADOW: frozenset({RolloutPhase.CANARY, RolloutPhase.ROLLING, RolloutPhase.ROLLED_BACK}),
    RolloutPhase.CANARY: frozenset({RolloutPhase.CANARY, RolloutPhase.PROMOTE, RolloutPhase.ROLLBACK}),
    RolloutPhase.ROLLING: frozenset({RolloutPhase.PROMOTED, RolloutPhase.ROLLBACK}),
    RolloutPhase.PROMOTE: frozenset({RolloutPhase.PROMOTED, RolloutPhase.ROLLBACK}),
    RolloutPhase.ROLLBACK: frozenset({RolloutPhase.ROLLED_BACK}),
    RolloutPhase.PROMOTED: frozenset(),
    RolloutPhase.ROLLED_BACK: frozenset(),
}


@dataclass
class RolloutState:
    """One rollout of ``version`` to the InferenceService ``namespace/name``; persisted as an annotation.

    ``generation`` (the spec generation the last write produced) is not persisted: it is read back from the
    object's ``metadata.generation`` on recovery, since the manager is the only writer of the spec.
    ``verified_version`` is the version whose analysis passed in this rollout (or in the recorded rollout it
    continues): ``champion`` may only move to a version equal to it (invariant I1).
    """

    name: str
    namespace: str
    version: str
    storage_uri: str
    phase: RolloutPhase
    strategy: RolloutStrategy
    mode: str = "Serverless"
    deadline: float = 0.0
    weights: list[int] = field(default_factory=list)
    step: int = 0
    previous_version: str | None = None
    previous_uri: str | None = None
    previous_revision: str | None = None
    previous_model: dict[str, Any] | None = None
    new_model: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None
    analyses: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    verified_version: str | None = None
    #: When the rollout started (ISO): its id in the rollout records, kept by a resumed rollout.
    started_at: str | None = None
    #: When the canary's current weight took effect (UNIX time): the start of the step's live window.
    step_started_at: float | None = None
    #: Whether the endpoint has the Feast transformer in front (probes then go through the feature path).
    feature_path: bool = False
    #: Share of the stable predictor's requests mirrored to the challenger in the shadow step (None: no shadow).
    shadow_percent: float | None = None
    generation: int | None = None

    @property
    def challenger(self) -> str:
        """The shadow step's InferenceService (the new version beside the stable one)."""
        return manifests.challenger_name(self.name)

    @property
    def ready_target(self) -> str:
        """The InferenceService whose readiness the current phase waits for."""
        return self.challenger if self.phase == RolloutPhase.SHADOW else self.name

    @property
    def verified(self) -> bool:
        """Whether the rollout is promoted and a passed analysis of its own version is recorded."""
        return self.phase == RolloutPhase.PROMOTED and self.verified_version == self.version

    @property
    def weight(self) -> int | None:
        """The canary's current traffic share, or None outside a canary."""
        return self.weights[self.step] if self.weights and self.step < len(self.weights) else None

    def move_to(self, phase: RolloutPhase) -> None:
        """Enter ``phase``; refuse transitions the state machine does not have."""
        if phase not in TRANSITIONS[self.phase]:
            raise RolloutFailedError(
                f"Rollout of {self.namespace}/{self.name} cannot go from {self.phase} to {phase}.",
                reason="InvalidTransition",
            )
        self.phase = phase

    def to_annotation(self) -> str:
        """Serialize for the ``mlops.example.com/rollout`` annotation (without the in-memory ``generation``)."""
        data = asdict(self)
        data.pop("generation")
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_annotation(cls, text: str, generation: int | None = None) -> RolloutState:
        """Rebuild the state from its annotation; unknown keys (from a newer provider) are ignored."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["phase"] = RolloutPhase(data["phase"])
        data["strategy"] = RolloutStrategy(data["strategy"])
        data["generation"] = generation
        return cls(**data)

    @classmethod
    def from_inference_service(cls, isvc: dict | None) -> RolloutState | None:
        """Return the state recorded on ``isvc``, or None when it carries none (or an unreadable one)."""
        if not isvc:
            return None
        text = annotations_of(isvc).get(ROLLOUT_STATE_ANNOTATION)
        if not text:
            return None
        try:
            return cls.from_annotation(text, (isvc.get("metadata") or {}).get("generation"))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning(
                "Ignoring the unreadable rollout state on %s: %s", (isvc.get("metadata") or {}).get("name"), exc
            )
            return None


def canary_weights(first: int, step: int = 0, maximum: int | None = None) -> list[int]:
    """Return the canary's traffic shares: ``first``, then ``+step`` while within ``maximum`` (0: one step)."""
    weights = [first]
    if step > 0:
        limit = max(maximum or first, first)
        while weights[-1] + step <= limit:
            weights.append(weights[-1] + step)
    return weights


class KServeRolloutManager:
    """Own one KServe rollout: submit, wait, analyse, step, promote or roll back.

    :param hook: the KServe hook (Kubernetes connection and namespace).
    :param model_name: registered model name (the V2 path the analysis calls).
    :param analysis: how each step is judged.
    :param progress_deadline: seconds the rollout may take (readiness waits included); a rollback gets its own.
    :param raw_deployment_strategy: ``rolling`` or ``refuse`` for InferenceServices in RawDeployment mode.
    :param deployment_mode: mode of a newly created InferenceService.
    :param endpoint_url: URL the analysis calls instead of the one KServe reports.
    :param training_set: training-set manifest to draw smoke rows (and, with a feature service, entity rows) from.
    :param settings: bundle settings for rendering (default :func:`get_settings`).
    :param clock: time source (tests).
    :param live_analysis: judge each canary step on live traffic too (None: probes only).
    :param live_source: where live measurements come from (``"prometheus"``, ``"prediction_log"``, a
        :class:`~mlops_provider.serving.live_analysis.LiveSource`); None: Prometheus when it answers, else the log.
    :param data_root: where rollout records are written; default ``[mlops] data_root``.
    :param shadow_percent: start a new version with a shadow step mirroring this share of the stable predictor's
        requests to it (None: straight to the canary or rolling update).
    """

    def __init__(
        self,
        hook: KServeHook,
        *,
        model_name: str,
        analysis: AnalysisConfig,
        progress_deadline: float = 600.0,
        raw_deployment_strategy: str = "rolling",
        deployment_mode: str = "Serverless",
        endpoint_url: str | None = None,
        training_set: dict | str | None = None,
        settings: MlopsSettings | None = None,
        clock: Callable[[], float] = time.time,
        live_analysis: LiveAnalysisConfig | None = None,
        live_source: LiveSource | str | None = None,
        data_root: str | None = None,
        shadow_percent: float | None = None,
    ) -> None:
        if shadow_percent is not None and not 0 < shadow_percent <= 100:
            raise ValueError(f"shadow_percent must be within (0, 100], got {shadow_percent}.")
        if shadow_percent is not None and live_analysis is None:
            raise ValueError(
                "A shadow step is judged on the mirrored traffic (agreement, divergence, latency against stable): "
                "pass live_analysis with shadow_percent."
            )
        if raw_deployment_strategy not in ("rolling", "refuse"):
            raise ValueError(f"raw_deployment_strategy must be 'rolling' or 'refuse', got {raw_deployment_strategy!r}.")
        self.hook = hook
        self.model_name = model_name
        self.analysis = analysis
        self.progress_deadline = progress_deadline
        self.raw_deployment_strategy = raw_deployment_strategy
        self.deployment_mode = deployment_mode
        self.endpoint_url = endpoint_url
        self.training_set = training_set
        self.settings = settings
        self.clock = clock
        self.live_analysis = live_analysis
        self.live_source = live_source
        self.data_root = data_root or (settings.data_root if settings is not None else None)
        self.shadow_percent = shadow_percent

    # ------------------------------------------------------------------ state on the cluster
    def recover(self, name: str) -> RolloutState | None:
        """Return the rollout state recorded on the InferenceService ``name`` (None when there is none)."""
        return RolloutState.from_inference_service(self.hook.get_inference_service(name))

    def _write(self, state: RolloutState, patch: dict) -> None:
        """Send ``patch`` with the state annotation in it; remember the generation it produced."""
        patch.setdefault("metadata", {}).setdefault("annotations", {})[ROLLOUT_STATE_ANNOTATION] = state.to_annotation()
        patched = self.hook.patch_inference_service(state.name, patch, namespace=state.namespace)
        state.generation = (patched.get("metadata") or {}).get("generation")

    def _save(self, state: RolloutState) -> None:
        """Record the state alone (an annotation change: no new generation, no new revision)."""
        self._write(state, manifests.annotations_patch({}))

    # ------------------------------------------------------------------ start
    def start(
        self,
        *,
        name: str,
        version: str,
        storage_uri: str,
        weights: list[int],
        manifest_options: dict[str, Any] | None = None,
    ) -> RolloutState:
        """Create or patch the InferenceService for ``version``; return the state to wait on.

        A rollout of the same version and storage URI left unfinished on the cluster (a retried or killed
        task) is resumed from its recorded phase, with a fresh deadline.

        :param manifest_options: extra keyword arguments of
            :func:`~mlops_provider.serving.manifests.render_inference_service` (feature service, replicas...).
        """
        options = dict(manifest_options or {})
        namespace = self.hook.namespace
        deadline = self.clock() + self.progress_deadline
        started_at = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        feature_path = bool(options.get("transformer", True) and options.get("feature_service"))

        def render(mode: str) -> dict:
            return manifests.render_inference_service(
                self.model_name,
                storage_uri,
                self.settings,
                name=name,
                namespace=namespace,
                model_version=version,
                deployment_mode=mode,
                **options,
            )

        def render_challenger() -> dict:
            # The mirror copies the stable predictor's requests (features already looked up), so the challenger
            # serves without the transformer; a fused predictor's requests are entity rows, so it stays fused.
            fused = options.get("transformer", True) and options.get("serving_mode") == "fused"
            return manifests.render_inference_service(
                self.model_name,
                storage_uri,
                self.settings,
                name=manifests.challenger_name(name),
                namespace=namespace,
                model_version=version,
                deployment_mode=deployment_mode(existing or {}),
                **{**options, "transformer": bool(fused)},
            )

        existing = self.hook.get_inference_service(name)
        if existing is None:
            state = RolloutState(
                name=name,
                namespace=namespace,
                version=version,
                storage_uri=storage_uri,
                phase=RolloutPhase.FIRST,
                strategy=RolloutStrategy.CREATE,
                mode=self.deployment_mode,
                deadline=deadline,
                weights=list(weights),
                started_at=started_at,
                feature_path=feature_path,
            )
            body = render(self.deployment_mode)
            body["metadata"]["annotations"][ROLLOUT_STATE_ANNOTATION] = state.to_annotation()
            created = self.hook.create_inference_service(body)
            state.generation = (created.get("metadata") or {}).get("generation")
            fault_point("deploy.after_patch")
            return state

        recorded = RolloutState.from_inference_service(existing)
        if (
            recorded is not None
            and not recorded.phase.terminal
            and recorded.version == version
            and recorded.storage_uri == storage_uri
            and not (recorded.phase == RolloutPhase.ROLLBACK and recorded.reason == KILLED_REASON)
        ):
            log.info(
                "Resuming the rollout of version %s on %s/%s from phase %s (recorded on the InferenceService).",
                version,
                namespace,
                name,
                recorded.phase,
            )
            recorded.deadline = deadline
            recorded.started_at = recorded.started_at or started_at  # a state written before records: from now on
            self._save(recorded)
            if recorded.phase == RolloutPhase.SHADOW:
                # The killed try may have removed the challenger already: applying it again is a no-op otherwise.
                self._apply_challenger(recorded, render_challenger())
            return recorded
        if recorded is not None and recorded.phase == RolloutPhase.SHADOW:
            self._remove_shadow(recorded)  # an interrupted shadow of another version: its mirror must not stay

        mode = deployment_mode(existing)
        raw = mode in RAW_MODES
        predictor_spec = (existing.get("spec") or {}).get("predictor") or {}
        current_model = predictor_spec.get("model") or {}
        desired_model = render("RawDeployment" if raw else "Serverless")["spec"]["predictor"]["model"]
        reported = predictor_status(existing)
        state = RolloutState(
            name=name,
            namespace=namespace,
            version=version,
            storage_uri=storage_uri,
            phase=RolloutPhase.PROMOTE,
            strategy=RolloutStrategy.UNCHANGED,
            mode=mode,
            deadline=deadline,
            weights=list(weights),
            previous_version=annotations_of(existing).get(MODEL_VERSION_ANNOTATION),
            previous_uri=storage_uri_of(existing),
            previous_revision=reported.get("latestRolledoutRevision") or reported.get("latestReadyRevision"),
            previous_model=current_model,
            new_model=desired_model,
            started_at=started_at,
            feature_path=feature_path,
        )
        if recorded is not None and not recorded.phase.terminal and recorded.previous_model:
            # An earlier rollout of another version was interrupted: its last known-good version stays the
            # one to return to, not the half-rolled-out spec on the object.
            state.previous_version = recorded.previous_version
            state.previous_uri = recorded.previous_uri
            state.previous_revision = recorded.previous_revision
            state.previous_model = recorded.previous_model
        if state.previous_uri == storage_uri and predictor_spec.get("canaryTrafficPercent") in (None, 100):
            state.generation = (existing.get("metadata") or {}).get("generation")
            if (
                recorded is not None
                and recorded.verified
                and recorded.version == version
                and recorded.storage_uri == storage_uri
            ):
                log.info(
                    "InferenceService %s already serves %s (analysis passed); checking it is Ready.", name, storage_uri
                )
                state.analysis, state.verified_version = recorded.analysis, recorded.verified_version
            else:
                # Serving the URI proves nothing: a first deployment that failed its analysis also serves it.
                log.info(
                    "InferenceService %s already serves %s but no passed analysis of version %s is recorded; "
                    "analysing it at full traffic.",
                    name,
                    storage_uri,
                    version,
                )
                state.phase = RolloutPhase.VERIFY
            self._save(state)
            return state
        if raw and self.raw_deployment_strategy == "refuse":
            raise RolloutFailedError(
                f"InferenceService {namespace}/{name} runs in {mode} mode, where KServe ignores "
                "canaryTrafficPercent (no Knative revisions to split traffic between), and "
                "raw_deployment_strategy='refuse': nothing was changed. Use Serverless mode for canaries, or "
                "raw_deployment_strategy='rolling' for a readiness-gated rolling update with analysis and rollback.",
                reason="CanaryUnsupportedInRawDeployment",
            )
        if self.shadow_percent is not None:
            state.phase, state.strategy = RolloutPhase.SHADOW, RolloutStrategy.SHADOW
            state.shadow_percent = self.shadow_percent
            # The state first, on the stable InferenceService: a killed task finds the challenger it owns.
            self._save(state)
            self._apply_challenger(state, render_challenger())
            log.info("Shadow of version %s: challenger %s/%s, then the mirror", version, namespace, state.challenger)
            fault_point("deploy.after_patch")
            return state
        self._begin_new_version(state)
        fault_point("deploy.after_patch")
        return state

    def _begin_new_version(self, state: RolloutState) -> RolloutState:
        """Put the new version in the stable InferenceService: a canary at the first weight, or a raw rolling update."""
        isvc = self.hook.get_inference_service(state.name) or {}
        current_model = ((isvc.get("spec") or {}).get("predictor") or {}).get("model") or {}
        raw = state.mode in RAW_MODES
        phase = RolloutPhase.ROLLING if raw else RolloutPhase.CANARY
        if state.phase == RolloutPhase.SHADOW:
            state.move_to(phase)
        else:
            state.phase, state.strategy = phase, RolloutStrategy(phase.value)
        canary: int | None = None
        if raw:
            log.info(
                "%s mode: rolling update (no traffic split is possible), then analysis at full traffic.", state.mode
            )
        else:
            state.step = 0
            canary = state.weight
            state.step_started_at = self.clock()
            log.info("Serverless mode: canary of version %s at %d%% of traffic", state.version, canary)
        self._write(
            state,
            manifests.new_version_patch(
                current_model, state.new_model or {}, state.version, canary_traffic_percent=canary
            ),
        )
        return state

    # ------------------------------------------------------------------ shadow
    def _apply_challenger(self, state: RolloutState, body: dict) -> None:
        """Create (or keep) the challenger InferenceService of the shadow step; wait on its generation."""
        applied = self.hook.apply_inference_service(body, namespace=state.namespace)
        state.generation = (applied.get("metadata") or {}).get("generation")

    def _shadow_objects(self, state: RolloutState) -> list[dict[str, Any]]:
        """The Istio VirtualService (mirror) and DestinationRule of the shadow step."""
        return manifests.render_istio_shadow(
            self.model_name,
            self.settings,
            name=state.name,
            namespace=state.namespace,
            challenger=state.challenger,
            mirror_percent=float(state.shadow_percent or 0.0),
        )

    def _remove_shadow(self, state: RolloutState) -> None:
        """Delete the mirror first (no more copies), then its DestinationRule, then the challenger (idempotent)."""
        for obj in self._shadow_objects(state):
            self.hook.delete_istio_object(obj["kind"], obj["metadata"]["name"], namespace=state.namespace)
        self.hook.delete_inference_service(state.challenger, namespace=state.namespace)

    def _after_shadow_ready(self, state: RolloutState) -> RolloutState:
        """Probe the challenger, mirror live traffic to it, judge the window against stable; go on or end."""
        url = endpoint_url_of(self.hook.get_inference_service(state.challenger) or {})
        if not url:
            return self._end_shadow(state, "NoEndpoint", "KServe reports no URL for the challenger.")
        # Probes before the mirror: the window then holds mirrored requests only.
        analysis = self._analyze(url, state, f"shadow challenger (version {state.version})", key="shadow")
        if analysis["passed"]:
            for obj in self._shadow_objects(state):
                self.hook.apply_istio_object(obj, namespace=state.namespace)
            state.step_started_at = self.clock()  # a resumed shadow judges a fresh window
            fault_point("deploy.mid_shadow")
            analysis = self._with_live(analysis, self._judge_live(state, None, analysis, mode="shadow"), "Shadow")
        state.analysis = analysis
        state.analyses.append(
            {
                "mode": "shadow",
                "weight": state.shadow_percent,
                "passed": analysis["passed"],
                "reason": analysis["reason"],
                "checks": len(analysis["checks"]),
                **({"live": analysis["live"]["verdict"]} if "live" in analysis else {}),
            }
        )
        if not analysis["passed"]:
            return self._end_shadow(state, analysis["reason"], analysis["message"])
        self._remove_shadow(state)
        log.info("Shadow of version %s passed; removed the mirror, starting the new version's traffic", state.version)
        return self._begin_new_version(state)

    def _end_shadow(self, state: RolloutState, reason: str, message: str) -> RolloutState:
        """End a shadow that did not pass: the stable version never stopped serving, so only the shadow goes."""
        log.warning("Shadow of version %s on %s did not pass: %s (%s)", state.version, state.name, message, reason)
        state.reason, state.message = reason, message
        return self._finish(state, RolloutPhase.ROLLED_BACK)

    # ------------------------------------------------------------------ readiness
    def check(self, state: RolloutState) -> dict[str, Any]:
        """Read the InferenceService once; return the readiness event (``status``: ready/failed/pending)."""
        target = state.ready_target
        current = evaluate_readiness(self.hook.get_inference_service(target), state.generation)
        return {**current, "name": target, "namespace": state.namespace, "status": current["state"]}

    def wait(self, state: RolloutState, poll_interval: float = 5.0) -> dict[str, Any]:
        """Poll until ready, failed or the state's deadline (``status``: ready/failed/timeout)."""
        while True:
            event = self.check(state)
            if event["status"] in ("ready", "failed"):
                return event
            now = self.clock()
            if now >= state.deadline:
                return {**event, "status": "timeout"}
            time.sleep(min(poll_interval, max(0.0, state.deadline - now)))

    # ------------------------------------------------------------------ transitions
    def advance(self, state: RolloutState, event: dict[str, Any]) -> RolloutState:
        """Take the next step after a readiness wait ended with ``event``; return the (possibly terminal) state."""
        status = event.get("status")
        log.info("InferenceService %s after %s: %s (%s)", state.name, state.phase, status, event.get("reason"))
        if status != "ready":
            detail = f"{event.get('reason')}: {event.get('message')}"
            if status == "timeout":
                detail = (
                    f"not Ready within the progress deadline of {self.progress_deadline:.0f} s; last condition {detail}"
                )
            if state.phase in (RolloutPhase.FIRST, RolloutPhase.VERIFY):
                raise RolloutFailedError(
                    f"Deployment of {self.model_name} version {state.version} as InferenceService "
                    f"{state.namespace}/{state.name} is {detail}. Nothing to roll back to; the champion alias "
                    "was not moved.",
                    reason=event.get("reason"),
                )
            if state.phase == RolloutPhase.SHADOW:
                return self._end_shadow(state, event.get("reason") or "NotReady", f"The challenger is {detail}.")
            if state.phase == RolloutPhase.ROLLBACK:
                raise RolloutFailedError(
                    f"Rolling back InferenceService {state.namespace}/{state.name} to {state.previous_uri} did not "
                    f"complete: {detail}. Check the InferenceService; the champion alias was not moved.",
                    reason=event.get("reason"),
                )
            return self._rollback(state, event.get("reason") or "NotReady", f"The new revision is {detail}.")
        if state.phase == RolloutPhase.SHADOW:
            return self._after_shadow_ready(state)
        isvc = self.hook.get_inference_service(state.name) or {}
        if state.phase == RolloutPhase.ROLLBACK:
            return self._finish(state, RolloutPhase.ROLLED_BACK)
        if state.phase == RolloutPhase.CANARY:
            return self._after_canary_ready(state, isvc)
        # FIRST and ROLLING (analysis at full traffic), PROMOTE (analysis already done)
        if not is_raw_mode(isvc):
            share = latest_revision_share(isvc)
            if share is not None and share != 100:
                return self._rollback(
                    state,
                    "TrafficNotShifted",
                    f"KServe reports {share}% of traffic on the new revision after promotion, not 100%.",
                )
        if state.phase in (RolloutPhase.FIRST, RolloutPhase.ROLLING, RolloutPhase.VERIFY):
            url = self.endpoint_url or endpoint_url_of(isvc)
            if not url:
                if state.phase == RolloutPhase.ROLLING:
                    return self._rollback(state, "NoEndpoint", "KServe reports no URL for the InferenceService.")
                raise RolloutFailedError(
                    f"KServe reports no URL for InferenceService {state.namespace}/{state.name}; the champion alias "
                    "was not moved.",
                    reason="NoEndpoint",
                )
            analysis = self._analyze(url, state, f"version {state.version}")
            state.analysis = analysis
            if not analysis["passed"]:
                if state.phase in (RolloutPhase.FIRST, RolloutPhase.VERIFY):
                    # The state stays in this phase on the object: a retry analyses again, never promotes blind.
                    self._save(state)
                    raise RolloutFailedError(
                        f"Deployment of {self.model_name} version {state.version} failed its analysis "
                        f"({analysis['reason']}): {analysis['message']} Nothing to roll back to; the champion "
                        "alias was not moved.",
                        reason=analysis["reason"],
                    )
                return self._rollback(state, analysis["reason"], analysis["message"])
            state.verified_version = state.version
        return self._finish(state, RolloutPhase.PROMOTED)

    def _analyze(self, url: str, state: RolloutState, label: str, key: str | None = None) -> dict[str, Any]:
        """Run the probes' analysis and record it as the step's (or ``key``'s) analysis (a live verdict replaces it)."""
        started = self.clock()
        analysis = run_analysis(
            url,
            self.model_name,
            self.analysis,
            deadline=state.deadline,
            label=label,
            training_set=self.training_set,
            progress_deadline=self.progress_deadline,
            expected_version=state.version,
            feature_path=state.feature_path,
        )
        self._record(
            state,
            ANALYSIS,
            state.step if key is None else key,
            {
                "step": state.step,
                "weight": state.weight if state.phase == RolloutPhase.CANARY else None,
                "source": "probes",
                "window_seconds": max(0.0, self.clock() - started),
                "verdict": "pass" if analysis["passed"] else "fail",
                "metrics": [self._probe_metric(analysis)],
                "message": analysis["message"],
            },
        )
        return analysis

    def _probe_metric(self, analysis: dict[str, Any]) -> dict[str, Any]:
        """The probes' outcome as one metric of a step's record: passing checks against the required ones."""
        passing = sum(1 for check in analysis.get("checks") or [] if check.get("ok"))
        return {
            "name": "probes",
            "value": float(passing),
            "threshold": float(self.analysis.iterations),
            "passed": bool(analysis["passed"]),
            "stable": None,
            "canary": None,
        }

    def _judge_live(
        self, state: RolloutState, weight: int | None, probes: dict[str, Any], mode: str = "canary"
    ) -> dict[str, Any]:
        """Judge the step's live window until a verdict, or until the deadline leaves it inconclusive.

        ``mode="shadow"``: the window of mirrored requests, with the agreement of both versions' answers.
        """
        from mlops_provider.serving.live_analysis import INCONCLUSIVE, judge_live_window

        assert self.live_analysis is not None
        start = datetime.fromtimestamp(state.step_started_at or self.clock(), UTC)
        while True:
            if not state.previous_version:
                verdict: dict[str, Any] = {
                    "verdict": INCONCLUSIVE,
                    "metrics": [],
                    "source": "probes",
                    "window_seconds": 0.0,
                    "message": "The stable version is unknown (no model version annotation on the InferenceService): "
                    "there is nothing to compare the canary's live traffic with.",
                }
            else:
                end = datetime.fromtimestamp(max(self.clock(), start.timestamp() + 0.001), UTC)
                verdict = judge_live_window(
                    mode=mode,
                    model_name=self.model_name,
                    stable_version=state.previous_version,
                    candidate_version=state.version,
                    start=start,
                    end=end,
                    weight=weight,
                    config=self.live_analysis,
                    source=self.live_source,
                )
            verdict["metrics"].append(self._probe_metric(probes))
            if mode == "shadow":
                self._record(state, SHADOW, "shadow", {"mode": mode, "weight": state.shadow_percent, **verdict})
            else:
                self._record(state, ANALYSIS, state.step, {"step": state.step, "weight": weight, **verdict})
            wait = self.live_analysis.inconclusive_wait
            give_up = state.deadline if wait is None else min(state.deadline, start.timestamp() + wait)
            if (
                verdict["verdict"] != INCONCLUSIVE
                or not state.previous_version
                or self.clock() + self.analysis.interval >= give_up
            ):
                return verdict
            log.info(
                "Live analysis of the %s at %s%%: %s Judging again in %.0f s.",
                mode,
                weight if mode == "canary" else state.shadow_percent,
                verdict["message"],
                self.analysis.interval,
            )
            time.sleep(self.analysis.interval)

    def _with_live(self, analysis: dict[str, Any], live: dict[str, Any], kind: str) -> dict[str, Any]:
        """The step's analysis with its live verdict: one that does not pass fails the step.

        The reason is ``<kind>AnalysisFailed`` or ``<kind>AnalysisInconclusive``.
        """
        if self._live_passes(live):
            return {**analysis, "live": live}
        reason = f"{kind}Analysis{'Failed' if live['verdict'] == 'fail' else 'Inconclusive'}"
        return {**analysis, "passed": False, "reason": reason, "message": live["message"], "live": live}

    def _live_passes(self, live: dict[str, Any]) -> bool:
        """Whether a live verdict lets the step pass: ``pass``, or ``inconclusive`` when the probes' verdict stands."""
        from mlops_provider.serving.live_analysis import INCONCLUSIVE, PASS

        assert self.live_analysis is not None
        if live["verdict"] == INCONCLUSIVE and self.live_analysis.on_inconclusive == "probes":
            log.warning(
                "Too little live traffic for a verdict (%s); the probes' passed verdict stands.", live["message"]
            )
            return True
        return bool(live["verdict"] == PASS)

    def _record(self, state: RolloutState, kind: str, key: str | int, details: dict[str, Any]) -> None:
        """Write a rollout record; a failed write is logged, never fails the rollout (the cluster holds the state)."""
        if not state.started_at:
            return
        try:
            RolloutRecorder(self.model_name, state.version, state.started_at, self.data_root).record(kind, key, details)
        except Exception:
            log.exception(
                "Could not write the %s record of the rollout of %s v%s", kind, self.model_name, state.version
            )

    def _after_canary_ready(self, state: RolloutState, isvc: dict) -> RolloutState:
        weight = state.weight
        if is_raw_mode(isvc):
            return self._rollback(
                state,
                "CanaryNotApplied",
                f"KServe reports deployment mode {deployment_mode(isvc)}: canaryTrafficPercent is ignored there, so "
                "no canary ran. Use raw_deployment_strategy (rolling/refuse) for raw InferenceServices.",
            )
        share = latest_revision_share(isvc)
        if share != weight:
            return self._rollback(
                state,
                "CanaryNotApplied",
                f"Requested {weight}% for the canary but status.components.predictor.traffic reports "
                f"{predictor_traffic(isvc) or 'no traffic'}; the canary did not happen.",
            )
        url = self.endpoint_url or canary_url_of(isvc)
        if not url:
            return self._rollback(state, "NoEndpoint", "KServe reports no URL for the canary.")
        fault_point("deploy.mid_canary")
        analysis = self._analyze(url, state, f"canary at {weight}% (version {state.version})")
        if analysis["passed"] and self.live_analysis is not None:
            analysis = self._with_live(analysis, self._judge_live(state, weight, analysis), "Live")
        state.analysis = analysis
        # A summary per step: the checks of the last analysis are in ``analysis`` (annotations stay small).
        state.analyses.append(
            {
                "weight": weight,
                "passed": analysis["passed"],
                "reason": analysis["reason"],
                "checks": len(analysis["checks"]),
                **({"live": analysis["live"]["verdict"]} if "live" in analysis else {}),
            }
        )
        if not analysis["passed"]:
            return self._rollback(state, analysis["reason"], analysis["message"])
        if state.step + 1 >= len(state.weights):
            state.verified_version = state.version  # the last canary step passed: recorded with the promotion
        if state.step + 1 < len(state.weights):
            state.step += 1
            state.step_started_at = self.clock()
            state.move_to(RolloutPhase.CANARY)
            log.info("Canary step passed; raising its traffic to %d%%", state.weight)
            self._write(state, manifests.traffic_patch(state.weight))
            return state
        log.info("Canary analysis passed; promoting version %s to 100%% of traffic", state.version)
        state.move_to(RolloutPhase.PROMOTE)
        self._write(state, manifests.traffic_patch(None))
        return state

    def _rollback(self, state: RolloutState, reason: str, message: str) -> RolloutState:
        if not state.previous_model:
            raise RolloutFailedError(f"{message} No previous version to roll back to.", reason=reason)
        log.warning("Rolling back %s to %s: %s (%s)", state.name, state.previous_uri, message, reason)
        state.move_to(RolloutPhase.ROLLBACK)
        state.reason, state.message = reason, message
        # The rollback gets its own deadline: it must not be cut short by the failed rollout's.
        state.deadline = self.clock() + self.progress_deadline
        self._write(
            state,
            manifests.rollback_patch(
                state.new_model or {}, state.previous_model, state.previous_version, raw=state.mode in RAW_MODES
            ),
        )
        return state

    def abort(self, name: str, message: str = "The deploy task was killed.") -> RolloutState | None:
        """Take back an unfinished rollout of the InferenceService ``name`` (the task was killed); return its state.

        A canary or rolling update goes back to the recorded previous model at once (no wait: the retry, or the
        next rollout, finds the ``rollback`` phase with reason ``TaskKilled`` and starts afresh from the recorded
        previous version). A first deployment or a verification has nothing to return to: only the reason is
        recorded. Finished rollouts are left alone.
        """
        state = self.recover(name)
        if state is None or state.phase.terminal or state.phase == RolloutPhase.ROLLBACK:
            return state
        if state.phase == RolloutPhase.SHADOW:
            return self._end_shadow(state, KILLED_REASON, f"{message} The shadow was removed; stable never stopped.")
        if state.phase in (RolloutPhase.FIRST, RolloutPhase.VERIFY) or not state.previous_model:
            state.reason, state.message = KILLED_REASON, f"{message} Nothing to roll back to."
            self._save(state)
            return state
        return self._rollback(state, KILLED_REASON, message)

    def _finish(self, state: RolloutState, phase: RolloutPhase) -> RolloutState:
        if state.strategy == RolloutStrategy.SHADOW:
            self._remove_shadow(state)  # whatever the path here, no mirror outlives the rollout
        state.move_to(phase)
        self._save(state)
        outcome = "promoted" if phase == RolloutPhase.PROMOTED else "rolled_back"
        message = state.message if phase == RolloutPhase.ROLLED_BACK else f"Version {state.version} serves all traffic."
        self._record(state, RESULT, "final", {"outcome": outcome, "message": message or ""})
        return state

    # ------------------------------------------------------------------ outcome
    def result(self, state: RolloutState) -> DeployResult:
        """Describe a finished rollout (the deploy task's XCom)."""
        if not state.phase.terminal:
            raise ValueError(f"The rollout of {state.name} is still in phase {state.phase}.")
        isvc = self.hook.get_inference_service(state.name) or {}
        result: DeployResult = {
            "model_name": self.model_name,
            "model_version": state.version,
            "endpoint_url": endpoint_url_of(isvc) or "",
            "backend": "kserve",
            "status": str(state.phase),
            "protocol": "v2",
            "strategy": str(state.strategy),
            "deployment_mode": deployment_mode(isvc),
            "traffic": {str(t.get("revisionName")): int(t.get("percent") or 0) for t in predictor_traffic(isvc)},
            "analysis": state.analysis,
        }
        if state.phase == RolloutPhase.PROMOTED:
            result["revision"] = predictor_status(isvc).get("latestReadyRevision")
        else:
            result["revision"] = state.previous_revision
            result["reason"] = state.reason or ""
            result["message"] = state.message or ""
            result["previous_version"] = state.previous_version
        return result
