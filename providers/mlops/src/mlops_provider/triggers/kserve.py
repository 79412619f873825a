"""Deferrable wait until an InferenceService is Ready for the spec generation the operator submitted.

The readiness rules are :func:`mlops_provider.serving.status.evaluate_readiness`, shared with the worker-side wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_provider.serving.status import evaluate_readiness

__all__ = ["InferenceServiceReadyTrigger", "evaluate_readiness"]


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
