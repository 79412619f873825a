"""Deferrable wait until an InferenceService is Ready for the spec generation the operator submitted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_provider.hooks.kserve import condition, deployment_mode, is_raw_mode, predictor_status, traffic_split

# Reasons after which waiting longer does not help (Knative, KServe and kubelet vocabulary).
TERMINAL_REASONS = frozenset(
    {
        "RevisionFailed",
        "RevisionMissing",
        "ContainerMissing",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "ModelLoadFailed",
        "InvalidSpec",
        "InvalidPredictorSpec",
        "NoSupportingRuntime",
        "RuntimeNotRecognized",
        "ExitCode",
    }
)


def evaluate_readiness(isvc: dict | None, generation: int | None = None) -> dict[str, Any]:
    """Decide whether ``isvc`` is ready for ``generation``; return ``{"state", "reason", "message", ...}``.

    ``state`` is ``ready`` (the controller observed the spec, ``Ready`` is True and, with Knative, the newest
    revision is the newest ready one), ``failed`` (a terminal reason: waiting will not help), or ``pending``.
    ``reason``/``message`` come from the failing condition, so a timeout can say what was wrong.
    """
    if isvc is None:
        return {"state": "failed", "reason": "NotFound", "message": "The InferenceService does not exist."}
    status = isvc.get("status") or {}
    summary = {
        "deployment_mode": deployment_mode(isvc),
        "traffic": traffic_split(isvc),
        "url": status.get("url"),
    }
    model_status = status.get("modelStatus") or {}
    failure = model_status.get("lastFailureInfo") or {}
    if model_status.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec"):
        return {
            "state": "failed",
            "reason": failure.get("reason") or model_status["transitionStatus"],
            "message": failure.get("message") or f"Model status {model_status['transitionStatus']}.",
            **summary,
        }
    observed = status.get("observedGeneration")
    wanted = generation if generation is not None else (isvc.get("metadata") or {}).get("generation")
    if wanted is not None and (observed is None or int(observed) < int(wanted)):
        return {
            "state": "pending",
            "reason": "NotObserved",
            "message": f"The controller has not observed generation {wanted} yet (observed {observed}).",
            **summary,
        }
    failing = [c for c in status.get("conditions") or [] if str(c.get("status")) != "True"]
    for cond in failing:
        if cond.get("reason") in TERMINAL_REASONS:
            return {
                "state": "failed",
                "reason": cond.get("reason"),
                "message": f"{cond.get('type')}: {cond.get('message') or cond.get('reason')}",
                **summary,
            }
    ready = condition(isvc, "Ready")
    if ready is None or str(ready.get("status")) != "True":
        worst = ready if ready is not None and ready.get("reason") else (failing[0] if failing else ready or {})
        return {
            "state": "pending",
            "reason": worst.get("reason") or "NotReady",
            "message": f"{worst.get('type', 'Ready')}: {worst.get('message') or 'not ready yet'}",
            **summary,
        }
    predictor = predictor_status(isvc)
    if not is_raw_mode(isvc):
        created, ready_rev = predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")
        if created and ready_rev != created:
            return {
                "state": "pending",
                "reason": "RevisionNotReady",
                "message": f"Revision {created} is not ready (latest ready: {ready_rev}).",
                **summary,
            }
    return {"state": "ready", "reason": "Ready", "message": "InferenceService is Ready.", **summary}


class InferenceServiceReadyTrigger(BaseTrigger):
    """Poll an InferenceService until it is Ready for ``generation``, fails terminally, or ``deadline`` passes.

    :param name: InferenceService name.
    :param namespace: its namespace.
    :param kubernetes_conn_id: Airflow Kubernetes connection.
    :param generation: spec generation the operator submitted (``metadata.generation`` after its write).
    :param deadline: UNIX time after which the wait fails with the last failing condition's reason and message.
    :param poll_interval: seconds between reads.
    """

    def __init__(
        self,
        *,
        name: str,
        namespace: str,
        kubernetes_conn_id: str,
        generation: int | None,
        deadline: float,
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id
        self.generation = generation
        self.deadline = deadline
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the dotted path and every constructor argument."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "name": self.name,
                "namespace": self.namespace,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "generation": self.generation,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
            },
        )

    def _read(self) -> dict | None:
        from mlops_provider.hooks.kserve import KServeHook

        return KServeHook(kubernetes_conn_id=self.kubernetes_conn_id, namespace=self.namespace).get_inference_service(
            self.name
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Yield exactly one event: ``ready``, ``failed``, ``timeout`` or ``error``."""
        base = {"name": self.name, "namespace": self.namespace, "generation": self.generation}
        last: dict[str, Any] = {"reason": "NotReady", "message": "no status read yet"}
        try:
            while True:
                # The Kubernetes client is synchronous: keep it off the triggerer's event loop.
                isvc = await asyncio.to_thread(self._read)
                last = evaluate_readiness(isvc, self.generation)
                if last["state"] in ("ready", "failed"):
                    yield TriggerEvent({**base, **last, "status": last["state"]})
                    return
                if time.time() >= self.deadline:
                    yield TriggerEvent({**base, **last, "status": "timeout"})
                    return
                await asyncio.sleep(min(self.poll_interval, max(0.0, self.deadline - time.time())))
        except Exception as exc:  # one error event instead of a crashed trigger
            yield TriggerEvent({**base, "status": "error", "reason": type(exc).__name__, "message": str(exc)})
