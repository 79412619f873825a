"""Helpers of the serving tests: tiny real XGBoost models and model-server processes.

The KServe controller for the fake cluster is :class:`tests.fake_k8s.kserve.KServeController`.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

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


#: Where the live-only-worse canary departs from the stable model: the first feature below it. Probes' synthetic
#: rows are in [0, 1] and never go there; users' requests (first feature ~ N(0, 1)) do, 40 % of them.
LIVE_ONLY_REGION_BELOW = -0.25


def train_live_only_worse_canary(stable_booster, seed: int = 7):
    """A model that agrees with ``stable_booster`` except where the first feature is below
    :data:`LIVE_ONLY_REGION_BELOW` (it says 1 there): worse only on live traffic, while its probes pass."""
    import xgboost as xgb

    names = feature_columns()
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, len(names))).astype(np.float32)
    labels = (stable_booster.inplace_predict(X) > 0.5).astype(int)
    labels[X[:, 0] < LIVE_ONLY_REGION_BELOW] = 1
    return xgb.train(
        {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "seed": seed},
        xgb.DMatrix(X, label=labels, feature_names=names),
        num_boost_round=40,
    )


def save_mlflow_model(booster, path: Path) -> str:
    """Save ``booster`` as an MLflow xgboost model folder (``MLmodel`` + model file); return its ``file://`` URI."""
    import mlflow.xgboost

    # Explicit requirements: inferring them runs pip, which takes seconds.
    mlflow.xgboost.save_model(booster, str(path), pip_requirements=["xgboost"])
    return path.as_uri()


class BackgroundLoop:
    """A daemon thread running ``_run`` while the ``with`` block lasts; ``stop`` is set when it ends."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        raise NotImplementedError


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


class InMemoryKServeHook:
    """A ``KServeHook`` stand-in that keeps InferenceServices in memory, for unit tests of the rollout manager.

    Writes go through the fake API server's merge-patch and bookkeeping rules (``generation`` bumps on spec
    changes only) and then through ``controller`` (e.g. :class:`tests.fake_k8s.kserve.KServeController`);
    ``patches`` records every merge patch the manager sent, in order.
    """

    def __init__(self, controller: Callable[[dict], None] | None = None, namespace: str = "models") -> None:
        from tests.fake_k8s.store import ObjectStore

        self.namespace = namespace
        self.kubernetes_conn_id = "in_memory"
        self.controller = controller
        self.store = ObjectStore()
        if controller is not None:
            self.store.add_controller("inferenceservices", controller)
        self.patches: list[dict] = []

    def get_inference_service(self, name: str, namespace: str | None = None) -> dict | None:
        obj = self.store.collection("serving.kserve.io", "inferenceservices").get((namespace or self.namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def create_inference_service(self, body: dict, namespace: str | None = None) -> dict:
        return self.store.put("serving.kserve.io", "v1beta1", namespace or self.namespace, "inferenceservices", body)

    def patch_inference_service(self, name: str, patch: dict, namespace: str | None = None) -> dict:
        from tests.fake_k8s.store import merge_patch

        self.patches.append(copy.deepcopy(patch))
        namespace = namespace or self.namespace
        existing = self.store.collection("serving.kserve.io", "inferenceservices")[(namespace, name)]
        new = merge_patch(existing, patch)
        assert isinstance(new, dict)
        new["metadata"].pop("resourceVersion", None)
        replaced = self.store.replace("serving.kserve.io", "inferenceservices", namespace, existing, new, None)
        return copy.deepcopy(replaced)


def run_in_serving_python(code: str, *args: str, timeout: float = 120, **kwargs: Any) -> Any:
    """Run ``code`` with the serving environment's Python (only ``kserve/`` on its path); return its last line as JSON.

    The code runs from a file, so that functions in it have source (Feast's on-demand views read their UDF's).
    """
    import json
    import tempfile

    env = {"PYTHONPATH": str(REPO_ROOT / "kserve"), "PATH": "/usr/bin:/bin", **kwargs.pop("env", {})}
    with tempfile.NamedTemporaryFile("w", suffix=".py", prefix="serving_check_") as script:
        script.write(code)
        script.flush()
        out = subprocess.run(
            [str(SERVING_PYTHON), script.name, *args], env=env, capture_output=True, text=True, timeout=timeout,
            **kwargs,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
