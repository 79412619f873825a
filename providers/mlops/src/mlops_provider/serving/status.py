"""Read a KServe InferenceService's status: deployment mode, traffic, conditions and readiness.

Pure functions over the object as the API returns it (a dict), shared by the rollout manager, the readiness
trigger and the tooling; no client, no I/O.
"""

from __future__ import annotations

from typing import Any

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"
#: Istio's networking API: the VirtualService (mirror) and DestinationRule of a shadow.
ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSION = "v1"
ISTIO_PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# KServe >= 0.15 calls RawDeployment "Standard"; both run plain Deployments without Knative traffic splitting.
RAW_MODES = frozenset({"RawDeployment", "Standard"})
SERVERLESS_MODES = frozenset({"Serverless", "Knative"})

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


def annotations_of(isvc: dict) -> dict[str, str]:
    """Return ``metadata.annotations`` (empty dict when absent)."""
    return dict((isvc.get("metadata") or {}).get("annotations") or {})


def deployment_mode(isvc: dict) -> str:
    """Return the deployment mode KServe reports (status), else the annotation, else ``Serverless``."""
    status_mode = (isvc.get("status") or {}).get("deploymentMode")
    if status_mode:
        return str(status_mode)
    return annotations_of(isvc).get(DEPLOYMENT_MODE_ANNOTATION) or "Serverless"


def is_raw_mode(isvc: dict) -> bool:
    """Whether the InferenceService runs without Knative (no revision traffic splitting)."""
    return deployment_mode(isvc) in RAW_MODES


def predictor_status(isvc: dict) -> dict:
    """Return ``status.components.predictor`` (empty dict when absent)."""
    return ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}


def predictor_traffic(isvc: dict) -> list[dict]:
    """Return the traffic KServe reports for the predictor (``status.components.predictor.traffic``)."""
    return list(predictor_status(isvc).get("traffic") or [])


def traffic_split(isvc: dict) -> dict[str, int]:
    """Map revision name to its reported traffic percent."""
    split: dict[str, int] = {}
    for target in predictor_traffic(isvc):
        name = target.get("revisionName") or ("latest" if target.get("latestRevision") else "unknown")
        split[name] = split.get(name, 0) + int(target.get("percent") or 0)
    return split


def latest_revision_share(isvc: dict) -> int | None:
    """Return the traffic percent KServe reports on the latest revision, or None when it reports no traffic."""
    traffic = predictor_traffic(isvc)
    if not traffic:
        return None
    latest = predictor_status(isvc).get("latestReadyRevision")
    return sum(
        int(t.get("percent") or 0)
        for t in traffic
        if t.get("latestRevision") or (latest and t.get("revisionName") == latest)
    )


def condition(isvc: dict, type_: str) -> dict | None:
    """Return the status condition of ``type_`` or None."""
    for cond in (isvc.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def storage_uri_of(isvc: dict) -> str | None:
    """Return the predictor's storage URI: ``model.storageUri``, else the server's ``--storage_uri`` argument."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    model = predictor.get("model") or {}
    if model.get("storageUri"):
        return str(model["storageUri"])
    for arg in model.get("args") or []:
        if str(arg).startswith("--storage_uri="):
            return str(arg).split("=", 1)[1]
    return None


def endpoint_url_of(isvc: dict) -> str | None:
    """Return the external URL KServe reports (``status.url``), else the in-cluster address."""
    status = isvc.get("status") or {}
    return status.get("url") or (status.get("address") or {}).get("url")


def canary_url_of(isvc: dict) -> str | None:
    """Return the latest revision's own URL (tag routing: tag ``latest``), else :func:`endpoint_url_of`."""
    for target in predictor_traffic(isvc):
        if target.get("tag") == "latest" and target.get("url"):
            return str(target["url"])
    return endpoint_url_of(isvc)


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
