"""A KServe controller for the fake Kubernetes API server: reconciles InferenceServices as KServe would.

Register it with ``fake_k8s.add_controller("inferenceservices", KServeController(...))``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable


def model_location(model: dict) -> str:
    """Where a predictor loads its model: ``storageUri`` (storage initializer) or the server's ``--storage_uri``
    argument (URIs the initializer cannot fetch, e.g. ``mlflow-artifacts:/``, which the server resolves itself)."""
    if model.get("storageUri"):
        return model["storageUri"]
    for arg in model.get("args") or []:
        if arg.startswith("--storage_uri="):
            return arg.split("=", 1)[1]
    raise ValueError(f"predictor model has neither storageUri nor --storage_uri: {model}")


class KServeController:
    """Reconcile InferenceServices like KServe does, on the fake API server's stored objects.

    Serverless: every change of the predictor spec (other than ``canaryTrafficPercent``) creates a Knative
    revision; a revision whose storage URI ``is_broken`` never becomes ready (``RevisionFailed``) and traffic stays
    where it was; ``canaryTrafficPercent`` splits traffic between the latest revision (tag ``latest``) and the last
    rolled-out one (tag ``prev``); without it the latest ready revision gets 100 % and becomes the rolled-out one.
    RawDeployment: no revisions and no traffic split (canaryTrafficPercent is ignored, as KServe does).
    ``url_for(storage_uri)`` gives the URL of the real server that "runs" a revision.
    """

    def __init__(self, url_for: Callable[[str], str], is_broken: Callable[[str], bool], ignore_canary: bool = False):
        self.url_for = url_for
        self.is_broken = is_broken
        self.ignore_canary = ignore_canary
        self.revisions: dict[str, list[dict]] = {}
        self.rolled_out: dict[str, list[str]] = {}
        self.reconciles = 0

    def __call__(self, obj: dict) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        status = obj.setdefault("status", {})
        generation = meta.get("generation", 1)
        if status.get("observedGeneration") == generation:
            return
        self.reconciles += 1
        name = meta["name"]
        mode = (meta.get("annotations") or {}).get("serving.kserve.io/deploymentMode", "Serverless")
        predictor = spec["predictor"]
        uri = model_location(predictor["model"])
        status["observedGeneration"] = generation
        status["deploymentMode"] = mode
        if mode in ("RawDeployment", "Standard"):
            broken = self.is_broken(uri)
            status["url"] = None if broken else self.url_for(uri)
            status["conditions"] = self._conditions(
                not broken, "CrashLoopBackOff", f"Container kserve-container is crash looping loading {uri}"
            )
            status["components"] = {"predictor": {"url": status["url"]}}
            if broken:
                status.pop("url")
            return
        config = json.dumps({k: v for k, v in predictor.items() if k != "canaryTrafficPercent"}, sort_keys=True)
        slow = uri.endswith("-slow")  # a revision whose pods never get ready, without a terminal reason
        revisions = self.revisions.setdefault(name, [])
        if not revisions or revisions[-1]["config"] != config:
            revisions.append(
                {
                    "name": f"{name}-predictor-{len(revisions) + 1:05d}",
                    "config": config,
                    "uri": uri,
                    "ready": not (self.is_broken(uri) or slow),
                }
            )
        latest = revisions[-1]
        ready = [r for r in revisions if r["ready"]]
        rolled = self.rolled_out.setdefault(name, [])
        by_name = {r["name"]: r for r in revisions}
        component = status.setdefault("components", {}).setdefault("predictor", {})
        component["latestCreatedRevision"] = latest["name"]
        if ready:
            component["latestReadyRevision"] = ready[-1]["name"]
        percent = None if self.ignore_canary else predictor.get("canaryTrafficPercent")
        if not latest["ready"] and slow:
            status["conditions"] = self._conditions(False, "Deploying", "Waiting for the revision's pods to be ready.")
            for cond in status["conditions"]:
                cond["status"] = "Unknown"
            return
        if not latest["ready"]:
            status["conditions"] = self._conditions(
                False,
                "RevisionFailed",
                f'Revision "{latest["name"]}" failed with message: model load failed for {uri}.',
            )
            return  # traffic stays where it was
        if percent is None or percent == 100 or not rolled:
            if not rolled or rolled[-1] != latest["name"]:
                rolled.append(latest["name"])
            traffic = [{"revisionName": latest["name"], "percent": 100, "latestRevision": True, "tag": "latest",
                        "url": self.url_for(uri)}]  # fmt: skip
            stable = latest
        else:
            stable = by_name[rolled[-1]]
            traffic = [
                {"revisionName": latest["name"], "percent": int(percent), "latestRevision": True, "tag": "latest",
                 "url": self.url_for(uri)},
                {"revisionName": stable["name"], "percent": 100 - int(percent), "latestRevision": False, "tag": "prev",
                 "url": self.url_for(stable["uri"])},
            ]  # fmt: skip
        component["traffic"] = traffic
        component["latestRolledoutRevision"] = rolled[-1]
        if len(rolled) > 1:
            component["previousRolledoutRevision"] = rolled[-2]
        component["url"] = self.url_for(stable["uri"])
        status["url"] = self.url_for(stable["uri"])
        status["address"] = {"url": f"http://{name}.{meta.get('namespace', 'default')}.svc.cluster.local"}
        status["conditions"] = self._conditions(True, None, None)

    @staticmethod
    def _conditions(ready: bool, reason: str | None, message: str | None) -> list[dict]:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if ready:
            return [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("IngressReady", "PredictorReady", "Ready")
            ]
        return [
            {
                "type": "PredictorReady",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            },
            {"type": "Ready", "status": "False", "reason": reason, "message": message, "lastTransitionTime": now},
        ]
