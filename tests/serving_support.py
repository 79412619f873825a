"""Helpers of the serving tests: tiny real XGBoost models, model-server processes, a KServe controller for fake_k8s."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.loopback import free_port, stop, wait_ready

# Not imported from tests.conftest: importing that module rewrites the Airflow environment (benchmarks use this file).
REPO_ROOT = Path(__file__).resolve().parents[1]
SERVING_PYTHON = REPO_ROOT / ".venv-serving" / "bin" / "python"
# Its own registered model, so the serving tests never touch the versions or aliases other tests create.
MODEL_NAME = "serving_fraud_detector"


def feature_columns() -> list[str]:
    """The model's feature order: the FeatureService's columns (the feature repository's contract)."""
    from include.feature_repo.definitions import FEATURE_COLUMNS

    return list(FEATURE_COLUMNS)


def train_booster(seed: int, n_features: int | None = None, names: list[str] | None = None):
    """Train a small binary XGBoost model on synthetic data; return ``(booster, X)``."""
    import xgboost as xgb

    names = names or feature_columns()
    n_features = len(names)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, n_features)).astype(np.float32)
    y = ((X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.3, size=len(X))) > 0.3).astype(int)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": seed},
        xgb.DMatrix(X, label=y, feature_names=names),
        num_boost_round=15 + seed,
    )
    return booster, X


def save_mlflow_model(booster, path: Path) -> str:
    """Save ``booster`` as an MLflow xgboost model folder (``MLmodel`` + model file); return its ``file://`` URI."""
    import mlflow.xgboost

    # Explicit requirements: inferring them runs pip, which takes seconds.
    mlflow.xgboost.save_model(booster, str(path), pip_requirements=["xgboost"])
    return path.as_uri()


@dataclass
class ServerProcess:
    """A model server process (predictor or transformer) from the serving environment."""

    process: subprocess.Popen
    http_port: int
    grpc_port: int
    log: Path
    model_name: str
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> int:
        stop(self.process)
        return self.process.returncode


def start_server(args: list[str], log: Path, model_name: str = MODEL_NAME, env: dict | None = None) -> ServerProcess:
    """Start ``python -m mlops_serving <args>`` on free ports (not waiting); see :func:`wait_server`."""
    http_port, grpc_port = free_port(), free_port()
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "kserve"), **(env or {})}
    handle = log.open("wb")
    process = subprocess.Popen(
        [str(SERVING_PYTHON), "-m", "mlops_serving", f"--model_name={model_name}", f"--http_port={http_port}",
         f"--grpc_port={grpc_port}", "--enable_latency_logging=false", *args],
        stdout=handle, stderr=subprocess.STDOUT, env=full_env, cwd=str(REPO_ROOT),
    )  # fmt: skip
    return ServerProcess(process, http_port, grpc_port, log, model_name)


def wait_server(server: ServerProcess, timeout: float = 90.0) -> ServerProcess:
    wait_ready(f"{server.url}/v2/models/{server.model_name}/ready", server.process, server.log, timeout)
    return server


def post_json(url: str, body: dict, timeout: float = 10.0) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text


# ---------------------------------------------------------------------------------------------------------------------
# A KServe controller for the fake Kubernetes API server
# ---------------------------------------------------------------------------------------------------------------------
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
        uri = predictor["model"].get("storageUri")
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
