"""Scripted pod lifecycles: what the fake kubelet and scheduler report for a pod over time.

A pod's status is a pure function of its :class:`PodBehavior` and the seconds since it was created, so
tests are deterministic and no background thread is needed: the server re-evaluates the status on every
read, list and watch tick and bumps ``resourceVersion`` (and records Events) when it changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

OUTCOMES = ("succeeded", "failed", "oomkilled", "unschedulable", "image_pull_error", "running", "config_error")


def rfc3339(ts: float) -> str:
    """Format a UNIX time the way the API server does (second precision, ``Z``)."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ts: float) -> str:
    """Format a UNIX time the way ``kubectl logs --timestamps`` prefixes lines."""
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


@dataclass
class PodBehavior:
    """How a pod created in the fake cluster behaves.

    :param outcome: one of ``succeeded``, ``failed``, ``oomkilled``, ``unschedulable``,
        ``image_pull_error``, ``running`` (runs until deleted).
    :param logs: lines the main container writes once it is running.
    :param exit_code: the main container's exit code (defaults: 0 succeeded, 1 failed, 137 oomkilled).
    :param reason: the terminated/waiting reason (defaults: Completed, Error, OOMKilled, ErrImagePull).
    :param message: termination message / waiting message / scheduler message.
    :param schedule_seconds: seconds the pod is ``Unschedulable`` before a node is found (an autoscaled GPU pool
        adding a node); the other stages follow from then on.
    :param pending_seconds: seconds in ``Pending``/``ContainerCreating`` (after scheduling) before the container starts.
    :param run_seconds: seconds the container runs before it terminates.
    :param match: labels (all must be equal) or a predicate over the pod manifest; None matches every pod.
    :param phase: override the terminal pod phase (e.g. ``Succeeded`` for an OOMKilled container with exit 0).
    :param run: ``fn(pod_manifest) -> (exit_code, log_lines)`` executed in a thread when the container starts
        (a fake kubelet that really runs the workload); the pod is Running until it returns, then it
        terminates with that exit code (``succeeded``/``failed``) and those log lines.
    """

    outcome: str = "succeeded"
    logs: list[str] = field(default_factory=list)
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    schedule_seconds: float = 0.0
    pending_seconds: float = 0.2
    run_seconds: float = 0.3
    match: dict[str, str] | Callable[[dict], bool] | None = None
    phase: str | None = None
    run: Callable[[dict], tuple[int, list[str]]] | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {OUTCOMES}")

    def matches(self, pod: dict) -> bool:
        """Return whether this behavior applies to ``pod`` (a manifest as POSTed)."""
        if self.match is None:
            return True
        if callable(self.match):
            return bool(self.match(pod))
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in self.match.items())

    @property
    def terminal_exit_code(self) -> int:
        if self.exit_code is not None:
            return self.exit_code
        return {"succeeded": 0, "failed": 1, "oomkilled": 137}.get(self.outcome, 0)

    @property
    def terminal_reason(self) -> str:
        if self.reason:
            return self.reason
        return {"succeeded": "Completed", "failed": "Error", "oomkilled": "OOMKilled"}.get(self.outcome, "Completed")


def _container_names(pod: dict) -> list[str]:
    return [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]


def _image(pod: dict, name: str) -> str:
    for c in (pod.get("spec") or {}).get("containers") or []:
        if c["name"] == name:
            return c.get("image", "")
    return ""


def compute_status(pod: dict, behavior: PodBehavior, created: float, now: float) -> tuple[dict, str]:
    """Return ``(status, stage)`` for ``pod`` at ``now``; ``stage`` names the lifecycle step (for Events)."""
    names = _container_names(pod)
    if behavior.outcome == "unschedulable" or now - created < behavior.schedule_seconds:
        message = (
            behavior.message
            or "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        )
        return {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": rfc3339(created),
                }
            ],
            "qosClass": _qos(pod),
        }, "unschedulable"

    created += behavior.schedule_seconds  # every later stage counts from the moment a node was found
    elapsed = now - created
    base_status = {"hostIP": "10.0.0.10", "startTime": rfc3339(created), "qosClass": _qos(pod)}
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339(created)}

    def waiting(reason: str, message: str | None = None) -> list[dict]:
        state = {"reason": reason}
        if message:
            state["message"] = message
        return [
            {
                "name": n,
                "image": _image(pod, n),
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"waiting": state},
                "lastState": {},
            }
            for n in names
        ]

    if behavior.outcome == "config_error":  # e.g. a referenced Secret does not exist
        return {
            "phase": "Pending",
            "conditions": [scheduled, {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"}],
            **base_status,
            "containerStatuses": waiting("CreateContainerConfigError", behavior.message or "configuration error"),
        }, "CreateContainerConfigError"

    if behavior.outcome == "image_pull_error":
        image = _image(pod, names[0]) if names else ""
        pull_message = behavior.message or (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
            f'failed to resolve reference "{image}": {image}: not found'
        )
        if elapsed < behavior.pending_seconds:
            return {
                "phase": "Pending",
                "conditions": [scheduled],
                **base_status,
                "containerStatuses": waiting("ContainerCreating"),
            }, "creating"
        backoff = elapsed >= behavior.pending_seconds + 1.0
        reason = behavior.reason or ("ImagePullBackOff" if backoff else "ErrImagePull")
        message = (
            f'Back-off pulling image "{image}"'
            if reason == "ImagePullBackOff" and not behavior.message
            else pull_message
        )
        return {
            "phase": "Pending",
            "conditions": [scheduled, {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"}],
            **base_status,
            "containerStatuses": waiting(reason, message),
        }, reason

    if elapsed < behavior.pending_seconds:
        return {
            "phase": "Pending",
            "conditions": [scheduled],
            **base_status,
            "containerStatuses": waiting("ContainerCreating"),
        }, "creating"

    started = created + behavior.pending_seconds
    running_forever = behavior.outcome == "running"
    if running_forever or elapsed < behavior.pending_seconds + behavior.run_seconds:
        ready = [
            {"type": t, "status": "True", "lastTransitionTime": rfc3339(started)}
            for t in ("Initialized", "Ready", "ContainersReady")
        ]
        return {
            "phase": "Running",
            "conditions": [scheduled, *ready],
            **base_status,
            "podIP": "10.1.0.5",
            "containerStatuses": [
                {
                    "name": n,
                    "image": _image(pod, n),
                    "imageID": f"docker.io/library/{_image(pod, n)}@sha256:{'0' * 64}",
                    "containerID": f"containerd://{'a' * 64}",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": rfc3339(started)}},
                    "lastState": {},
                }
                for n in names
            ],
        }, "running"

    finished = started + behavior.run_seconds
    exit_code = behavior.terminal_exit_code
    phase = behavior.phase or ("Succeeded" if exit_code == 0 else "Failed")
    terminated = {
        "exitCode": exit_code,
        "reason": behavior.terminal_reason,
        "startedAt": rfc3339(started),
        "finishedAt": rfc3339(finished),
        "containerID": f"containerd://{'a' * 64}",
    }
    if behavior.message:
        terminated["message"] = behavior.message
    not_ready = [
        {"type": t, "status": "False", "reason": "PodCompleted", "lastTransitionTime": rfc3339(finished)}
        for t in ("Ready", "ContainersReady")
    ]
    return {
        "phase": phase,
        "conditions": [scheduled, {"type": "Initialized", "status": "True"}, *not_ready],
        **base_status,
        "podIP": "10.1.0.5",
        "containerStatuses": [
            {
                "name": n,
                "image": _image(pod, n),
                "imageID": f"docker.io/library/{_image(pod, n)}@sha256:{'0' * 64}",
                "containerID": f"containerd://{'a' * 64}",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"terminated": terminated},
                "lastState": {},
            }
            for n in names
        ],
    }, f"terminated:{behavior.terminal_reason}"


def _qos(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    if containers and all((c.get("resources") or {}).get("limits") for c in containers):
        return (
            "Guaranteed"
            if all(
                (c.get("resources") or {}).get("requests", c["resources"]["limits"]) == c["resources"]["limits"]
                for c in containers
            )
            else "Burstable"
        )
    if any((c.get("resources") or {}).get("requests") for c in containers):
        return "Burstable"
    return "BestEffort"


def events_for_stage(pod: dict, stage: str, behavior: PodBehavior) -> list[tuple[str, str, str]]:
    """Return ``(type, reason, message)`` Events the cluster records when a pod enters ``stage``."""
    name = pod["metadata"]["name"]
    ns = pod["metadata"].get("namespace", "default")
    image = _image(pod, _container_names(pod)[0]) if _container_names(pod) else ""
    if stage == "unschedulable":
        return [
            (
                "Warning",
                "FailedScheduling",
                behavior.message
                or "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
            )
        ]
    if stage == "creating":
        return [
            ("Normal", "Scheduled", f"Successfully assigned {ns}/{name} to fake-node-1"),
            ("Normal", "Pulling", f'Pulling image "{image}"'),
        ]
    if stage == "ErrImagePull":
        return [
            ("Warning", "Failed", f'Failed to pull image "{image}": not found'),
            ("Warning", "Failed", "Error: ErrImagePull"),
        ]
    if stage == "ImagePullBackOff":
        return [
            ("Normal", "BackOff", f'Back-off pulling image "{image}"'),
            ("Warning", "Failed", "Error: ImagePullBackOff"),
        ]
    if stage == "running":
        return [
            ("Normal", "Pulled", f'Successfully pulled image "{image}"'),
            ("Normal", "Created", "Created container"),
            ("Normal", "Started", "Started container"),
        ]
    if stage == "CreateContainerConfigError":
        return [("Warning", "Failed", f"Error: {behavior.message or 'configuration error'}")]
    if stage == "terminated:OOMKilled":
        return [("Warning", "OOMKilling", "Memory cgroup out of memory: Killed process (python)")]
    return []
