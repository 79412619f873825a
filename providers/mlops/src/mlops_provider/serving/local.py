"""Local serving backend: the KServe predictor (and Feast transformer) as local processes, blue/green or progressive.

Layout under ``settings.serving_root``:

* ``endpoint.json`` -- where the stable-port proxy sends requests: the primary ``upstream``, and during a
  progressive rollout a ``canary`` (with its ``weight``) or a ``shadow`` (with its ``percent``);
* ``deployment.json`` -- the live slot (colour, model version, storage URI, pids and ports), the proxy, the
  candidate slot and the progressive ``rollout`` in progress (version, start, step reached);
* ``pids/<colour>-<component>.pid`` -- each process's pid; ``logs/<colour>-<component>.log`` -- its output.

Scale to zero (a model spec's ``serving.autoscaling.min_replicas: 0``): the live slot records how its processes were
started (``launch``: command lines, environment, logs, readiness URLs) and ``endpoint.json`` passes that on with a
``sleep_after``; the proxy stops the slot after that many seconds without an inference request and starts the same
command lines when the next request comes (see :mod:`mlops_serving.proxy`). The slot stays the live one while it is
asleep. Each file has one writer: this module writes ``deployment.json``, ``endpoint.json`` and the pid files of the
processes it starts; the proxy writes ``scale.json`` (whether the live slot is ``awake`` or ``asleep``), the pid files
of the processes it woke (``pids/woken-<colour>-<component>.pid``) and one ``wakes/*.json`` per wake (the cold starts,
:meth:`LocalEndpoint.cold_starts`). Stopping a slot stops both its own and its woken processes (this module deletes a
woken pid file only after stopping its process, and ``scale.json`` only after stopping the proxy), so a killed proxy
leaves no process that :meth:`LocalEndpoint.stop_all` cannot find. ``deployment.json`` and ``endpoint.json`` hold what
each slot adds to the inherited environment (an MLflow connection's credentials when the model needs them): they are
readable by their owner only.

The slots are also Prometheus targets: every change of ``deployment.json`` or of the route rewrites
``<local_root>/prometheus/targets/local-serving.json`` (Prometheus ``file_sd_configs``; ``make up``'s Prometheus
reads that folder) with each slot's processes labelled ``model``, ``version``, ``role`` (``stable``, ``canary``,
``shadow``, or ``candidate`` while it is only probed) and ``color``, so a local Prometheus scrapes canary and stable
while they serve and the live analysis can judge them from it.

The stable endpoint is ``http://127.0.0.1:<settings.local_serving_port>``, served by ``mlops_serving.proxy``.
:class:`BlueGreenRollout` starts the new colour on free ports next to the live one, waits until it is ready,
analyses it (smoke requests), then switches the proxy and stops the old colour after a grace period, or discards
the new colour. :class:`ProgressiveRollout` runs the candidate through judged live steps (shadow, canary weights)
before it becomes the primary. Processes are supervised by :mod:`mlops_provider.utils.process`: they run in their own session,
so they outlive the Airflow task that started them; re-deploying the version that is already live is a no-op.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import MlopsError, RolloutFailedError
from mlops_provider.serving.analysis import AnalysisConfig, http_get_json, run_analysis
from mlops_provider.serving.records import ANALYSIS, PHASE, RESULT, RolloutRecorder
from mlops_provider.serving.records import SHADOW as SHADOW_EVENT
from mlops_provider.spec.model import SERVING_MODES
from mlops_provider.utils.faults import fault_point
from mlops_provider.utils.process import (
    ProcessExitedError,
    free_port,
    port_open,
    process_alive,
    read_pid,
    start_process,
    stop_process,
    wait_healthy,
)

if TYPE_CHECKING:
    from mlops_provider.payloads import DeployResult
    from mlops_provider.settings import MlopsSettings

log = logging.getLogger(__name__)

COLORS = ("blue", "green")
#: Command-line marker of the model server processes (guards against pid reuse).
SERVER_MARKER = "mlops_serving"
PROXY_MARKER = "mlops_serving.proxy"
COMPONENTS = ("predictor", "transformer")
#: A slot's state as :meth:`LocalEndpoint.slot_status` reports it.
AWAKE, ASLEEP, DOWN = "awake", "asleep", "down"


def mlflow_env(storage_uri: str, mlflow_conn_id: str | None = None) -> dict[str, str]:
    """Environment the servers need to read ``storage_uri`` from MLflow (address and credentials), else empty.

    Only for the child processes' environment; never logged.
    """
    if not storage_uri.startswith(("models:/", "runs:/", "mlflow-artifacts:")):
        return {}
    from mlops_provider.hooks.mlflow import MlflowHook

    hook = MlflowHook(mlflow_conn_id)
    return {"MLFLOW_TRACKING_URI": hook.tracking_uri, **hook.credential_env()}


def feast_config_for_serving(enabled: bool | None = None) -> str | None:
    """Return the resolved ``feature_store.yaml`` for the Feast transformer, or None to serve without it.

    :param enabled: True requires the transformer, False disables it, None starts it when the Feast repository
        has been applied (its local registry exists, or the registry is remote).
    """
    if enabled is False:
        return None
    from mlops_provider.hooks.feast import FeastHook

    try:
        hook = FeastHook()
        registry = hook.resolved_config.get("registry") or {}
        path = registry.get("path", "") if isinstance(registry, dict) else str(registry)
        if enabled is None and "://" not in path and not Path(path).exists():
            log.info("Feast registry %s not applied yet: serving the predictor without the transformer.", path)
            return None
        return str(hook.write_resolved_config())
    except MlopsError as exc:
        if enabled:
            raise
        log.info("No usable Feast repository (%s): serving the predictor without the transformer.", exc)
        return None


def prometheus_targets_dir(settings: MlopsSettings) -> Path:
    """The folder of Prometheus file-discovery target files the local backend keeps up to date."""
    return Path(settings.local_root) / "prometheus" / "targets"


class LocalEndpoint:
    """Start, check, switch and stop local model servers behind the stable endpoint.

    :param settings: bundle settings (default :func:`~mlops_provider.settings.get_settings`).
    :param startup_timeout: seconds a new server may take to become ready.
    :param drain_seconds: seconds the old colour keeps running after the switch, for in-flight requests.
    :param bind_host: address every process (proxy, predictor, transformer) listens on; loopback unless a caller
        explicitly exposes the endpoint to the network.
    :param wake_queue_limit: requests the proxy holds while an asleep slot wakes; more are answered ``503``. A wake
        may take ``startup_timeout`` seconds.
    """

    def __init__(
        self,
        *,
        settings: MlopsSettings | None = None,
        startup_timeout: float = 120.0,
        drain_seconds: float = 1.0,
        bind_host: str = "127.0.0.1",
        wake_queue_limit: int = 256,
    ) -> None:
        super().__init__()
        self._settings = settings
        self.bind_host = bind_host
        self.startup_timeout = startup_timeout
        self.drain_seconds = drain_seconds
        self.wake_queue_limit = wake_queue_limit

    @cached_property
    def settings(self) -> MlopsSettings:
        """Resolved bundle settings."""
        if self._settings is not None:
            return self._settings
        from mlops_provider.settings import get_settings

        return get_settings()

    # -- paths and state -------------------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """State folder of the local endpoint."""
        return self.settings.serving_root

    @property
    def endpoint_url(self) -> str:
        """The stable endpoint URL."""
        return f"http://127.0.0.1:{self.settings.local_serving_port}"

    @property
    def _deployment_file(self) -> Path:
        return self.root / "deployment.json"

    @property
    def _endpoint_file(self) -> Path:
        return self.root / "endpoint.json"

    def _pid_file(self, name: str) -> Path:
        return self.root / "pids" / f"{name}.pid"

    @property
    def _scale_file(self) -> Path:
        """Written by the proxy only: the live slot's ``slot`` id and ``state`` (``awake``/``asleep``)."""
        return self.root / "scale.json"

    @property
    def wakes_dir(self) -> Path:
        """Written by the proxy only: one JSON record per wake of an asleep slot."""
        return self.root / "wakes"

    def _read_state(self) -> dict:
        try:
            return json.loads(self._deployment_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _write_json(self, path: Path, data: dict | list, private: bool = False) -> None:
        """Replace ``path`` atomically; ``private``: readable by this user only (it holds the slots' added environment)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644), "w") as out:
            out.write(json.dumps(data, indent=2))
        os.replace(tmp, path)

    def _update_state(self, **changes: Any) -> dict:
        state = self._read_state()
        state.update(changes)
        self._write_json(self._deployment_file, state, private=True)
        self._publish_targets(state, self.traffic())
        return state

    @property
    def targets_file(self) -> Path:
        """The Prometheus file-discovery targets of this endpoint's slots."""
        return prometheus_targets_dir(self.settings) / "local-serving.json"

    def _publish_targets(self, state: dict, route: dict) -> None:
        """Write the slots as Prometheus targets, labelled with their model, version, role and colour."""
        slots: list[tuple[dict, str]] = []
        if state.get("active"):
            slots.append((state["active"], "stable"))
        candidate = state.get("candidate")
        if candidate:
            upstream = candidate.get("upstream")
            role = "candidate"  # started (or probed) but not routed any request yet
            for routed in ("canary", "shadow"):
                if upstream and (route.get(routed) or {}).get("upstream") == upstream:
                    role = routed
            slots.append((candidate, role))
        groups = [
            {
                "targets": [f"127.0.0.1:{slot[component]['http_port']}"],
                "labels": {
                    "model": str(slot.get("model_name")),
                    "version": str(slot.get("model_version")),
                    "role": role,
                    "color": str(slot.get("color")),
                },
            }
            for slot, role in slots
            for component in COMPONENTS
            if (slot.get(component) or {}).get("http_port")
        ]
        self._write_json(self.targets_file, groups)

    def active(self) -> dict | None:
        """Return the live slot if its processes run or it is asleep (scaled to zero), else None."""
        slot = self._read_state().get("active")
        if slot and self.slot_status(slot) != DOWN:
            return dict(slot)
        return None

    def _woken_pids(self, slot: dict) -> dict[str, int]:
        """``{component: pid}`` of the processes the proxy started when it woke ``slot``."""
        pids = {}
        for launch in slot.get("launch") or []:
            pid = read_pid(Path(launch["woken_pid_file"]))
            if pid:
                pids[launch["component"]] = pid
        return pids

    def slot_alive(self, slot: dict) -> bool:
        """Whether every process of ``slot`` runs: those this backend started, or those the proxy woke."""
        components = [c for c in COMPONENTS if slot.get(c)]
        if all(process_alive(slot[c].get("pid"), SERVER_MARKER) for c in components):
            return True
        woken = self._woken_pids(slot)
        return bool(components) and all(process_alive(woken.get(c), SERVER_MARKER) for c in components)

    def slot_status(self, slot: dict) -> str:
        """``awake`` (its processes run), ``asleep`` (scaled to zero by the proxy, woken by a request) or ``down``."""
        if self.slot_alive(slot):
            return AWAKE
        try:
            scale = json.loads(self._scale_file.read_text())
        except (FileNotFoundError, ValueError):
            return DOWN
        asleep = slot.get("slot_id") and scale.get("slot") == slot["slot_id"] and scale.get("state") == ASLEEP
        return ASLEEP if asleep else DOWN

    def ensure_awake(self, slot: dict) -> None:
        """Wake the live ``slot`` if it is asleep: a request through the proxy, which starts it and waits.

        :raises RolloutFailedError: the wake failed (the proxy's reason, with the server's log tail).
        """
        if self.slot_status(slot) != ASLEEP:
            return
        url = f"{self.endpoint_url}/v2/models/{slot['model_name']}/ready"
        status, body = http_get_json(url, timeout=self.startup_timeout + 10)
        if status != 200:
            raise RolloutFailedError(
                f"The asleep {slot['color']} slot ({slot['model_name']} version {slot['model_version']}) did not wake: "
                f"HTTP {status or 'no response'}: {body.get('error') if isinstance(body, dict) else body}",
                reason="WakeFailed",
            )

    def cold_starts(self, model_name: str | None = None) -> list[dict]:
        """The recorded wakes of asleep slots, oldest first (only ``model_name``'s when given).

        Each is ``{"model", "version", "slot", "woken_at", "cold_start_seconds", "trigger", "pids"}``.
        """
        wakes = []
        for path in self.wakes_dir.glob("*.json"):
            try:
                wake = json.loads(path.read_text())
            except (OSError, ValueError):
                log.warning("Skipping unreadable wake record %s", path)
                continue
            if model_name is None or wake.get("model") == model_name:
                wakes.append(wake)
        return sorted(wakes, key=lambda wake: str(wake.get("woken_at")))

    # -- processes -------------------------------------------------------------------------------------------------
    def _python(self) -> str:
        python = self.settings.serving_python
        if not Path(python).exists():
            raise RolloutFailedError(
                f"The serving environment's interpreter {python} does not exist; run `make venv-serving` or set "
                "AIRFLOW__MLOPS__SERVING_PYTHON."
            )
        return python

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        kserve_dir = str(self.settings.project_root / "kserve")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (kserve_dir, env.get("PYTHONPATH", "")) if p)
        env.update(extra or {})
        return env

    def _spawn(self, args: list[str], name: str, env: dict[str, str]) -> int:
        return start_process(
            [self._python(), *args],
            log_file=self.root / "logs" / f"{name}.log",
            env=env,
            cwd=self.settings.project_root,
            pid_file=self._pid_file(name),
        )

    def _server_launch(
        self, color: str, component: str, model_name: str, http_port: int, args: list[str], env: dict[str, str]
    ) -> dict[str, Any]:
        """How to start one model server of a slot: what this backend starts, and what the proxy replays to wake it.

        ``env`` is only what the slot adds to the environment both inherit (the backend's, which the proxy started
        with): the recorded state never holds the worker's whole environment.
        """
        return {
            "component": component,
            "argv": [self._python(), *args],
            "env": env,
            "cwd": str(self.settings.project_root),
            "log": str(self.root / "logs" / f"{color}-{component}.log"),
            "ready_url": f"http://127.0.0.1:{http_port}/v2/models/{model_name}/ready",
            "woken_pid_file": str(self._pid_file(f"woken-{color}-{component}")),
        }

    def _launch(self, slot: dict, launch: dict[str, Any]) -> int:
        """Start one recorded server process of ``slot`` (the one way this backend starts a model server)."""
        slot.setdefault("launch", []).append(launch)
        return start_process(
            launch["argv"],
            log_file=Path(launch["log"]),
            env=self._env(launch["env"]),
            cwd=launch["cwd"],
            pid_file=self._pid_file(f"{slot['color']}-{launch['component']}"),
        )

    def _log_tail(self, log_name: str, lines: int = 25) -> str:
        try:
            return "\n".join((self.root / "logs" / log_name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def ensure_proxy(self) -> int:
        """Start the stable-port proxy unless it already runs; return its pid."""
        state = self._read_state()
        proxy = state.get("proxy") or {}
        port = self.settings.local_serving_port
        if proxy.get("port") == port and process_alive(proxy.get("pid"), PROXY_MARKER):
            return int(proxy["pid"])
        # A proxy started by a try that died before recording it is known by its pid file: adopt it.
        orphan = read_pid(self._pid_file("proxy"))
        if orphan and process_alive(orphan, PROXY_MARKER) and port_open(port):
            self._update_state(proxy={"pid": orphan, "port": port})
            log.info("Adopted the running endpoint proxy on %s (pid %s)", self.endpoint_url, orphan)
            return orphan
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                raise RolloutFailedError(
                    f"Port {port} for the local endpoint is taken by another program ({exc}); stop it or set "
                    "AIRFLOW__MLOPS__LOCAL_SERVING_PORT to a free port."
                ) from None
        args = ["-m", PROXY_MARKER, "--host", self.bind_host, "--port", str(port), "--state", str(self._endpoint_file)]
        pid = self._spawn(args, "proxy", self._env(None))
        try:
            listening = wait_healthy(pid, lambda: port_open(port), timeout=30, marker=PROXY_MARKER, interval=0.05)
        except ProcessExitedError:
            stop_process(pid)  # our own child: nothing left behind, whatever the cause
            raise RolloutFailedError(f"The endpoint proxy exited at start:\n{self._log_tail('proxy.log')}") from None
        if not listening:
            stop_process(pid)
            raise RolloutFailedError(f"The endpoint proxy did not listen on port {port} within 30 s.")
        self._update_state(proxy={"pid": pid, "port": port})
        log.info("Started the endpoint proxy on %s (pid %s)", self.endpoint_url, pid)
        return pid

    def start_slot(
        self,
        model_name: str,
        storage_uri: str,
        model_version: str,
        *,
        feast_config: str | None = None,
        feature_service: str | None = None,
        env: dict[str, str] | None = None,
        color: str | None = None,
        prediction_log: bool = True,
        serving_mode: str = "transformer",
        scale_to_zero_after: float | None = None,
    ) -> dict:
        """Start a new colour (predictor, plus the Feast transformer) and wait until it is ready.

        :param feast_config: resolved ``feature_store.yaml`` for the feature lookup of entity requests; ``None``
            serves the predictor alone (feature rows only).
        :param feature_service: the FeatureService the model was trained on (required with ``feast_config``).
        :param serving_mode: with ``feast_config``, where the lookup runs: ``transformer`` (a Feast transformer in
            front of the predictor) or ``fused`` (in the predictor's process: no transformer, no hop).
        :param env: extra environment for the servers (e.g. ``MLFLOW_TRACKING_URI``; never logged).
        :param scale_to_zero_after: once live, the proxy stops the slot after this many seconds without an inference
            request and wakes it on the next request (``min_replicas: 0``); None: it always runs.
        :return: the slot description; its ``url`` serves the model directly (before any switch).
        """
        if serving_mode not in SERVING_MODES:
            raise RolloutFailedError(
                f"serving_mode={serving_mode!r} for {model_name} is not one of {SERVING_MODES} (the model spec's "
                "serving.mode)."
            )
        if feast_config and not feature_service:
            raise RolloutFailedError(
                f"The Feast transformer for {model_name} needs the model's feature_service (from its training-set "
                "manifest); none was given.",
                reason="FeatureServiceUnknown",
            )
        live = self.active()
        color = color or (COLORS[1] if live and live.get("color") == COLORS[0] else COLORS[0])
        stale = self._read_state().get("candidate")
        if stale and stale.get("color") == color:  # left over from an interrupted deployment
            self.stop_slot(stale)
        server_env = dict(env or {})  # what this slot adds to the environment it inherits (never the whole of it)
        predictor_port, predictor_grpc = free_port(), free_port()
        fused = bool(feast_config) and serving_mode == "fused"
        feast_args = [
            f"--feast_repo_path={self.settings.feast_repo_path}",
            f"--feast_config={feast_config}",
            f"--feature_service={feature_service}",
        ]
        predictor_args = [
            "-m",
            SERVER_MARKER,
            "--component=fused" if fused else "--component=predictor",
            *(feast_args if fused else []),
            f"--model_name={model_name}",
            f"--storage_uri={storage_uri}",
            f"--model_version={model_version}",
            f"--http_port={predictor_port}",
            f"--grpc_port={predictor_grpc}",
            f"--bind_host={self.bind_host}",
            "--enable_latency_logging=false",
            "--access_log=false",
        ]
        if prediction_log:
            log_uri = f"{self.settings.data_root.rstrip('/')}/predictions/{model_name}"
            predictor_args.append(f"--prediction_log_uri={log_uri}")
        slot: dict[str, Any] = {
            "color": color,
            "slot_id": uuid.uuid4().hex,
            "scale_to_zero_after": scale_to_zero_after,
            "model_name": model_name,
            "model_version": str(model_version),
            "storage_uri": storage_uri,
            "serving_mode": serving_mode if feast_config else None,
            "started_at": datetime.now(UTC).isoformat(),
            "predictor": {"http_port": predictor_port, "grpc_port": predictor_grpc, "log": f"{color}-predictor.log"},
            "transformer": None,
        }
        slot["predictor"]["pid"] = self._launch(
            slot, self._server_launch(color, "predictor", model_name, predictor_port, predictor_args, server_env)
        )
        self._update_state(candidate=slot)
        try:
            self._wait_ready(slot, "predictor", model_name)
            if feast_config and not fused:
                port, grpc = free_port(), free_port()
                slot["transformer"] = {"http_port": port, "grpc_port": grpc, "log": f"{color}-transformer.log"}
                args = [
                    "-m",
                    SERVER_MARKER,
                    "--component=transformer",
                    f"--model_name={model_name}",
                    f"--storage_uri={storage_uri}",
                    *feast_args,
                    # gRPC to the predictor: about 1 ms less per request than V2 REST on loopback.
                    f"--predictor_host=127.0.0.1:{predictor_grpc}",
                    "--predictor_protocol=grpc-v2",
                    "--access_log=false",
                    f"--http_port={port}",
                    f"--grpc_port={grpc}",
                    f"--bind_host={self.bind_host}",
                    "--enable_latency_logging=false",
                ]
                slot["transformer"]["pid"] = self._launch(
                    slot, self._server_launch(color, "transformer", model_name, port, args, server_env)
                )
                self._update_state(candidate=slot)
                self._wait_ready(slot, "transformer", model_name)
        except Exception:
            self.stop_slot(slot)
            self._update_state(candidate=None)
            raise
        front = slot["transformer"] or slot["predictor"]
        slot["upstream"] = f"127.0.0.1:{front['http_port']}"
        slot["url"] = f"http://{slot['upstream']}"
        self._update_state(candidate=slot)
        return slot

    def _wait_ready(self, slot: dict, component: str, model_name: str) -> None:
        info = slot[component]
        url = f"http://127.0.0.1:{info['http_port']}/v2/models/{model_name}/ready"
        try:
            ready = wait_healthy(
                info["pid"],
                lambda: http_get_json(url, timeout=1.0)[0] == 200,
                timeout=self.startup_timeout,
                marker=SERVER_MARKER,
            )
        except ProcessExitedError:
            raise RolloutFailedError(
                f"The {slot['color']} {component} for {model_name} version {slot['model_version']} exited during "
                f"start-up. Last lines of {self.root / 'logs' / info['log']}:\n{self._log_tail(info['log'])}",
                reason="ServerExited",
            ) from None
        if not ready:
            raise RolloutFailedError(
                f"The {slot['color']} {component} for {model_name} was not ready within {self.startup_timeout:.0f} s. "
                f"Last lines of its log:\n{self._log_tail(info['log'])}",
                reason="ProgressDeadlineExceeded",
            )
        log.info("%s %s ready on port %s", slot["color"], component, info["http_port"])

    def switch(self, slot: dict) -> dict | None:
        """Point the stable endpoint at ``slot``; stop the previous colour after the drain period; return it."""
        previous = self.active()
        self.route_traffic(slot)
        self._update_state(active=slot, candidate=None, previous=previous, rollout=None)
        log.info(
            "Endpoint %s now serves %s version %s (%s)",
            self.endpoint_url,
            slot["model_name"],
            slot["model_version"],
            slot["color"],
        )
        if previous and previous.get("color") != slot.get("color"):
            time.sleep(self.drain_seconds)
            self.stop_slot(previous)
        return previous

    def route_traffic(
        self,
        primary: dict,
        *,
        canary: dict | None = None,
        weight: int | None = None,
        shadow: dict | None = None,
        percent: int | None = None,
        scale_to_zero: bool | None = None,
    ) -> dict:
        """Point the proxy at ``primary``, with a canary share or a shadow; return the state written.

        ``weight`` % of inference requests go to ``canary``; ``percent`` % are mirrored to ``shadow``. The state file
        (``endpoint.json``) is replaced atomically; the proxy picks the change up on its next request, on connections already open too.
        ``scale_to_zero``: whether ``primary`` may sleep when idle (its ``scale_to_zero_after``); default: unless a
        canary or shadow is routed. Whatever it says, an asleep primary is woken by the next request.
        """
        state: dict[str, Any] = {
            "upstream": primary["upstream"],
            "color": primary["color"],
            "version": primary["model_version"],
            "model_version": primary["model_version"],
        }
        if canary is not None:
            state["canary"] = {"upstream": canary["upstream"], "version": canary["model_version"], "weight": weight}
        if shadow is not None:
            state["shadow"] = {"upstream": shadow["upstream"], "version": shadow["model_version"], "percent": percent}
        if primary.get("launch") and primary.get("slot_id"):
            if scale_to_zero is None:
                scale_to_zero = canary is None and shadow is None  # never while a rollout judges a candidate
            state["wake"] = {
                "slot": primary["slot_id"],
                "model": primary["model_name"],
                "version": primary["model_version"],
                "components": primary["launch"],
                "pids": {c: primary[c]["pid"] for c in COMPONENTS if primary.get(c)},
                "sleep_after": primary.get("scale_to_zero_after") if scale_to_zero else None,
                "timeout": self.startup_timeout,
                "queue_limit": self.wake_queue_limit,
            }
        self._write_json(self._endpoint_file, state, private=True)
        self._publish_targets(self._read_state(), state)
        return state

    def traffic(self) -> dict:
        """The proxy's current state (``endpoint.json``), empty when nothing is routed."""
        try:
            return json.loads(self._endpoint_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def discard(self, slot: dict) -> None:
        """Stop a candidate that failed its checks; the live colour keeps serving."""
        self.stop_slot(slot)
        self._update_state(candidate=None)

    def abort_candidate(self) -> dict | None:
        """Stop the candidate slot, if any, and record it as ``aborted``; the live slot is not touched."""
        candidate = self._read_state().get("candidate")
        if not candidate:
            return None
        self.stop_slot(candidate)
        self._update_state(candidate=None, aborted={**candidate, "aborted_at": datetime.now(UTC).isoformat()})
        log.warning(
            "Stopped the %s candidate (version %s) of an interrupted rollout.",
            candidate.get("color"),
            candidate.get("model_version"),
        )
        return candidate

    def stop_slot(self, slot: dict) -> None:
        """Stop the processes of ``slot`` (transformer first): those this backend started and those the proxy woke."""
        woken = self._woken_pids(slot)
        for component in reversed(COMPONENTS):
            info = slot.get(component)
            if info and info.get("pid"):
                stop_process(info["pid"], marker=SERVER_MARKER)
                self._pid_file(f"{slot.get('color')}-{component}").unlink(missing_ok=True)
            if woken.get(component):
                stop_process(woken[component], marker=SERVER_MARKER)
        for launch in slot.get("launch") or []:
            Path(launch["woken_pid_file"]).unlink(missing_ok=True)

    def stop_all(self) -> None:
        """Stop every process of the local endpoint (proxy, live colour -- woken or not -- and candidate)."""
        state = self._read_state()
        if state.get("proxy"):  # first: a request must not wake a slot while it is being stopped
            stop_process(state["proxy"].get("pid"), marker=PROXY_MARKER)
            self._pid_file("proxy").unlink(missing_ok=True)
        for key in ("candidate", "active"):
            if state.get(key):
                self.stop_slot(state[key])
        # A process interrupted before its slot reached the state file is known by its pid file only.
        for pid_file in sorted((self.root / "pids").glob("*.pid")):
            stop_process(read_pid(pid_file), marker=SERVER_MARKER)
            pid_file.unlink(missing_ok=True)
        self._endpoint_file.unlink(missing_ok=True)
        self._scale_file.unlink(missing_ok=True)
        self._write_json(self._deployment_file, {}, private=True)
        self._publish_targets({}, {})


class BlueGreenRollout:
    """Deploy a version on the local endpoint: start it next to the live colour, analyse it, switch or discard.

    :param endpoint: the local endpoint.
    :param model_name: registered model name.
    :param analysis: how the new colour is judged.
    :param progress_deadline: seconds the analysis may take.
    :param training_set: training-set manifest to draw smoke rows from.
    :param serving_mode: with Feast features, ``transformer`` or ``fused`` (see :meth:`LocalEndpoint.start_slot`).
    :param scale_to_zero_after: the live version sleeps after this many seconds without an inference request and
        wakes on the next one (a spec's ``min_replicas: 0``); None (``min_replicas >= 1``): it always runs.
    """

    def __init__(
        self,
        endpoint: LocalEndpoint,
        *,
        model_name: str,
        analysis: AnalysisConfig,
        progress_deadline: float = 600.0,
        training_set: dict | str | None = None,
        serving_mode: str = "transformer",
        scale_to_zero_after: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.model_name = model_name
        self.analysis = analysis
        self.progress_deadline = progress_deadline
        self.training_set = training_set
        self.serving_mode = serving_mode
        self.scale_to_zero_after = scale_to_zero_after

    def _analyze(self, url: str, version: str, deadline: float, label: str) -> dict[str, Any]:
        return run_analysis(
            url,
            self.model_name,
            self.analysis,
            deadline=deadline,
            label=label,
            training_set=self.training_set,
            progress_deadline=self.progress_deadline,
            expected_version=version,
        )

    def verified(self, version: str) -> bool:
        """Whether the live slot serves ``version`` of this model with a passed analysis recorded (invariant I1)."""
        live = self.endpoint.active()
        return bool(
            live
            and live.get("model_name") == self.model_name
            and live.get("model_version") == str(version)
            and live.get("verified_version") == str(version)
        )

    def abort(self) -> dict | None:
        """Stop the candidate slot of an interrupted rollout (the task was killed); the live slot keeps serving.

        Records the stopped candidate as ``aborted`` in ``deployment.json``; returns it (None when there was none).
        """
        return self.endpoint.abort_candidate()

    def deploy(
        self,
        version: str,
        storage_uri: str,
        *,
        feast_config: str | None = None,
        feature_service: str | None = None,
        env: dict[str, str] | None = None,
    ) -> DeployResult:
        """Roll ``version`` out; return the result (``status`` ``promoted`` or ``rolled_back``)."""
        endpoint = self.endpoint
        base: DeployResult = {
            "model_name": self.model_name,
            "model_version": version,
            "endpoint_url": endpoint.endpoint_url,
            "backend": "local",
            "protocol": "v2",
            "strategy": "blue_green",
        }
        endpoint.ensure_proxy()
        live = endpoint.active()
        deadline = time.time() + self.progress_deadline
        if (
            live
            and live["model_name"] == self.model_name
            and live["model_version"] == version
            and live["storage_uri"] == storage_uri
        ):
            analysis = None
            live["scale_to_zero_after"] = self.scale_to_zero_after  # the spec may have changed since it started
            if live.get("verified_version") != version:
                endpoint.ensure_awake(live)
                # Live but never analysed (started by hand, or by an older provider): serving proves nothing.
                log.info(
                    "Version %s is live on %s but no passed analysis is recorded: analysing it.", version, live["color"]
                )
                analysis = self._analyze(live["url"], version, deadline, f"live {live['color']} (version {version})")
                if not analysis["passed"]:
                    raise RolloutFailedError(
                        f"Version {version} of {self.model_name} serves {base['endpoint_url']} but failed its analysis "
                        f"({analysis['reason']}): {analysis['message']} Nothing to roll back to; the champion alias "
                        "was not moved.",
                        reason=analysis["reason"],
                    )
                live["verified_version"] = version
            log.info(
                "Version %s is already live on %s (%s); nothing to replace.",
                version,
                base["endpoint_url"],
                live["color"],
            )
            endpoint.switch(live)  # re-assert the proxy's upstream (idempotent), with the verification recorded
            return {
                **base,
                "status": "promoted",
                "revision": live["color"],
                "traffic": {live["color"]: 100},
                "analysis": analysis,
            }
        previous = live["color"] if live else None
        try:
            slot = endpoint.start_slot(
                self.model_name,
                storage_uri,
                version,
                feast_config=feast_config,
                feature_service=feature_service,
                env=env,
                serving_mode=self.serving_mode,
                scale_to_zero_after=self.scale_to_zero_after,
            )
        except RolloutFailedError as exc:
            if not live or previous is None:
                raise
            return {
                **base,
                "status": "rolled_back",
                "revision": previous,
                "traffic": {previous: 100},
                "analysis": None,
                "reason": exc.reason or "StartFailed",
                "message": str(exc),
            }
        fault_point("deploy.after_candidate_started")
        analysis = self._analyze(slot["url"], version, deadline, f"{slot['color']} (version {version})")
        if not analysis["passed"]:
            endpoint.discard(slot)
            return {
                **base,
                "status": "rolled_back",
                "revision": previous,
                "traffic": {previous: 100} if previous else {},
                "analysis": analysis,
                "reason": analysis["reason"],
                "message": analysis["message"],
            }
        slot["verified_version"] = version  # recorded in deployment.json with the switch
        endpoint.switch(slot)
        return {
            **base,
            "status": "promoted",
            "revision": slot["color"],
            "traffic": {slot["color"]: 100},
            "analysis": analysis,
        }


#: Local rollout strategies: replace after probes, live canary steps, or a shadow step before the canary steps.
BLUE_GREEN, CANARY, SHADOW = "blue_green", "canary", "shadow"
LOCAL_STRATEGIES = (BLUE_GREEN, CANARY, SHADOW)
#: A judge's verdicts.
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"

#: ``judge(mode=, model_name=, stable_version=, candidate_version=, start=, end=, weight=)`` ->
#: ``{"verdict": "pass" | "fail" | "inconclusive", "metrics": [...], "source": str, "message": str, ...}``.
Judge = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class RolloutStep:
    """One judged step of a progressive rollout.

    :param mode: ``shadow`` (the candidate gets a copy of ``weight`` % of requests; clients never see its answers)
        or ``canary`` (the candidate answers ``weight`` % of requests).
    :param weight: the shadow's mirrored percent or the canary's traffic share.
    """

    mode: str
    weight: int

    def __post_init__(self) -> None:
        if self.mode not in (SHADOW, CANARY):
            raise ValueError(f"A rollout step's mode must be {SHADOW!r} or {CANARY!r}, got {self.mode!r}.")
        if not 0 < self.weight <= 100:
            raise ValueError(f"A {self.mode} step's weight must be between 1 and 100, got {self.weight}.")


def progressive_steps(strategy: str, canary_weights: Sequence[int], shadow_percent: int = 100) -> list[RolloutStep]:
    """The judged steps of ``strategy``: ``canary`` -> one canary step per weight; ``shadow`` -> a shadow step first.

    :raises ValueError: for ``blue_green`` (no live steps) or an unknown strategy.
    """
    if strategy not in (CANARY, SHADOW):
        raise ValueError(f"Progressive local strategies are {CANARY!r} and {SHADOW!r}, got {strategy!r}.")
    steps = [RolloutStep(SHADOW, shadow_percent)] if strategy == SHADOW else []
    return steps + [RolloutStep(CANARY, int(weight)) for weight in canary_weights]


def probe_judge(
    url: str,
    model_name: str,
    config: AnalysisConfig,
    *,
    training_set: dict | str | None = None,
    timeout: float = 600.0,
) -> Judge:
    """The default judge: smoke probes of the candidate at ``url`` (:func:`run_analysis`), as a judge's verdict.

    It judges the candidate by requests of its own, not by the live traffic of the window; the live judge over the
    prediction log and Prometheus replaces it where those are available.
    """

    def judge(*, mode: str, candidate_version: str, weight: int | None = None, **_: Any) -> dict[str, Any]:
        label = f"{mode} candidate version {candidate_version}" + (f" at {weight}%" if weight is not None else "")
        result = run_analysis(
            url,
            model_name,
            config,
            deadline=time.time() + timeout,
            label=label,
            training_set=training_set,
            expected_version=candidate_version,
        )
        last = result["checks"][-1] if result["checks"] else {}
        metrics = [
            {"name": "error_rate", "value": last.get("error_rate"), "threshold": config.max_error_rate,
             "passed": last.get("error_rate") is not None and last["error_rate"] <= config.max_error_rate},
            {"name": "p99_latency_ms", "value": last.get("p99_ms"), "threshold": config.max_latency_ms,
             "passed": last.get("p99_ms") is not None and last["p99_ms"] <= config.max_latency_ms},
        ]  # fmt: skip
        return {
            "verdict": PASS if result["passed"] else FAIL,
            "metrics": metrics,
            "source": "probes",
            "message": result["message"],
            "reason": result["reason"],
        }

    return judge


class ProgressiveRollout(BlueGreenRollout):
    """Deploy a version on the local endpoint through judged live steps: shadow, canary weights, then full.

    The candidate starts next to the stable colour; for each step the proxy's route is rewritten (mirror
    ``weight`` % to it, or send it ``weight`` % of requests), the step's window of live traffic passes, and the judge
    decides: ``pass`` goes on, ``fail`` rolls back (the stable colour keeps every request, the candidate is stopped),
    ``inconclusive`` waits another window until the step's deadline, then fails the step (never passes it). After
    the last step the candidate becomes the primary and the stable colour stops after the drain period.

    The rollout's state (candidate version, start, step reached) is kept in ``deployment.json`` under ``rollout``:
    a retried deploy of the same version resumes at the step it reached, in the same rollout record; a retry that
    finds another version's rollout, or a dead candidate, rolls that one back first. Until the final switch the
    stable colour stays the primary, so a killed deploy leaves it serving. The first deployment (nothing live to
    compare against) and a re-deploy of the live version go blue/green.

    :param steps: the judged steps (:func:`progressive_steps`).
    :param judge: decides each step (see :data:`Judge`); default :func:`probe_judge` on the candidate.
    :param step_window: seconds of live traffic before each judgement.
    :param step_timeout: seconds a step may stay inconclusive before it fails.
    :param inconclusive_wait: seconds a step waits for enough live traffic before ``on_inconclusive`` decides
        (default: ``step_timeout``).
    :param on_inconclusive: what a step still inconclusive then does: ``rollback`` or ``probes`` (smoke probes
        sent to the candidate decide, as on KServe).
    :param strategy: the strategy name reported in the result.
    :param clock: seconds (tests); ``sleep``: how to wait (tests).
    """

    def __init__(
        self,
        endpoint: LocalEndpoint,
        *,
        model_name: str,
        analysis: AnalysisConfig,
        steps: Sequence[RolloutStep],
        judge: Judge | None = None,
        step_window: float = 30.0,
        step_timeout: float = 300.0,
        inconclusive_wait: float | None = None,
        on_inconclusive: str = "rollback",
        strategy: str = CANARY,
        progress_deadline: float = 3600.0,
        training_set: dict | str | None = None,
        serving_mode: str = "transformer",
        scale_to_zero_after: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            endpoint,
            model_name=model_name,
            analysis=analysis,
            progress_deadline=progress_deadline,
            training_set=training_set,
            serving_mode=serving_mode,
            scale_to_zero_after=scale_to_zero_after,
        )
        if not steps:
            raise ValueError("A progressive rollout needs at least one step; use BlueGreenRollout for none.")
        if step_window < 0 or step_timeout < step_window:
            raise ValueError(
                f"step_window ({step_window} s) must be >= 0 and step_timeout ({step_timeout} s) at least as long."
            )
        from mlops_provider.serving.live_analysis import ON_INCONCLUSIVE

        if on_inconclusive not in ON_INCONCLUSIVE:
            raise ValueError(f"on_inconclusive must be one of {list(ON_INCONCLUSIVE)}, got {on_inconclusive!r}.")
        self.steps = list(steps)
        self.judge = judge
        self.step_window = step_window
        self.step_timeout = step_timeout
        self.inconclusive_wait = step_timeout if inconclusive_wait is None else min(inconclusive_wait, step_timeout)
        self.on_inconclusive = on_inconclusive
        self.strategy = strategy
        self._sleep = sleep

    def _probes_decide(
        self, rollout: dict, index: int, candidate: dict, live: dict[str, Any], recorder: RolloutRecorder
    ) -> dict[str, Any]:
        """A step with too little live traffic for a verdict: smoke probes of the candidate decide it."""
        step = self.steps[index]
        probes = probe_judge(
            candidate["url"], self.model_name, self.analysis, training_set=self.training_set,
            timeout=self.progress_deadline,
        )(mode=step.mode, candidate_version=rollout["version"], weight=step.weight)  # fmt: skip
        log.warning(
            "Step %d (%s at %d%%): too little live traffic for a verdict (%s); the probes decide: %s",
            index + 1, step.mode, step.weight, live.get("message"), probes["verdict"],
        )  # fmt: skip
        details = {
            **live,
            "verdict": probes["verdict"],
            "source": "probes",
            "metrics": [*live.get("metrics", []), *probes["metrics"]],
            "live_verdict": live["verdict"],
            "message": f"Too little live traffic ({live.get('message')}); the probes' verdict: {probes['message']}",
        }
        recorder.record(SHADOW_EVENT if step.mode == SHADOW else ANALYSIS, index + 1, details)
        return details

    # -- state ---------------------------------------------------------------------------------------------------------
    def _rollout_state(self) -> dict | None:
        return self.endpoint._read_state().get("rollout")

    def _recorder(self, rollout: dict) -> RolloutRecorder:
        return RolloutRecorder(
            self.model_name, rollout["version"], rollout["started_at"], data_root=self.endpoint.settings.data_root
        )

    def _resumable(self, rollout: dict, stable: dict | None, version: str, storage_uri: str) -> dict | None:
        """The candidate slot of ``rollout`` when a retry can resume it, else None."""
        candidate = self.endpoint._read_state().get("candidate")
        same = (
            rollout.get("model_name") == self.model_name
            and rollout.get("version") == version
            and rollout.get("storage_uri") == storage_uri
            and [RolloutStep(**s) for s in rollout.get("steps", [])] == self.steps
        )
        if not (candidate and same and stable is not None and stable.get("color") == rollout.get("stable_color")):
            return None
        alive = candidate.get("color") == rollout.get("candidate_color") and "upstream" in candidate
        return dict(candidate) if alive and self.endpoint.slot_alive(candidate) else None

    def abort(self) -> dict | None:
        """Take back an interrupted rollout: the stable colour gets every request again, the candidate stops.

        Records the rollout's result as ``failed`` (killed); returns the stopped candidate (None when none).
        """
        rollout = self._rollout_state()
        if not rollout:
            return self.endpoint.abort_candidate()
        candidate = self.endpoint._read_state().get("candidate")
        self._roll_back(rollout, "failed", "TaskKilled", "The deploy task was killed; the stable colour serves.")
        return candidate

    def _roll_back(self, rollout: dict, outcome: str, reason: str, message: str) -> None:
        endpoint = self.endpoint
        stable = endpoint.active()
        if stable is not None:
            endpoint.route_traffic(stable)  # first: no request reaches the candidate any more
        candidate = endpoint._read_state().get("candidate")
        if candidate:
            endpoint.discard(candidate)
        endpoint._update_state(rollout=None)
        self._recorder(rollout).record(RESULT, "final", {"outcome": outcome, "reason": reason, "message": message})
        log.warning("Rollout of %s version %s: %s (%s)", self.model_name, rollout["version"], outcome, message)

    # -- the rollout ---------------------------------------------------------------------------------------------------
    def deploy(
        self,
        version: str,
        storage_uri: str,
        *,
        feast_config: str | None = None,
        feature_service: str | None = None,
        env: dict[str, str] | None = None,
    ) -> DeployResult:
        """Roll ``version`` out step by step; return the result (``status`` ``promoted`` or ``rolled_back``)."""
        endpoint = self.endpoint
        endpoint.ensure_proxy()
        stable = endpoint.active()
        rollout = self._rollout_state()
        candidate = None
        if rollout:
            candidate = self._resumable(rollout, stable, version, storage_uri)
            if candidate is None:
                self._roll_back(
                    rollout,
                    "failed",
                    "Superseded",
                    f"An interrupted rollout of version {rollout.get('version')} was found and rolled back before "
                    f"deploying version {version}.",
                )
                rollout = None
                stable = endpoint.active()
        if stable is None or (stable["model_name"] == self.model_name and stable["model_version"] == version):
            # Nothing live to compare with, or this version is live already: blue/green (or its no-op).
            return super().deploy(
                version, storage_uri, feast_config=feast_config, feature_service=feature_service, env=env
            )
        base: DeployResult = {
            "model_name": self.model_name,
            "model_version": version,
            "endpoint_url": endpoint.endpoint_url,
            "backend": "local",
            "protocol": "v2",
            "strategy": self.strategy,
            "previous_version": stable["model_version"],
        }
        if rollout is None or candidate is None:
            try:
                candidate = endpoint.start_slot(
                    self.model_name, storage_uri, version, feast_config=feast_config,
                    feature_service=feature_service, env=env, serving_mode=self.serving_mode,
                    scale_to_zero_after=self.scale_to_zero_after,
                )  # fmt: skip
            except RolloutFailedError as exc:
                return {
                    **base, "status": "rolled_back", "revision": stable["color"], "traffic": {stable["color"]: 100},
                    "analysis": None, "reason": exc.reason or "StartFailed", "message": str(exc),
                }  # fmt: skip
            rollout = {
                "model_name": self.model_name,
                "version": version,
                "storage_uri": storage_uri,
                "strategy": self.strategy,
                "started_at": datetime.now(UTC).isoformat(),
                "stable_color": stable["color"],
                "stable_version": stable["model_version"],
                "candidate_color": candidate["color"],
                "steps": [dataclasses.asdict(step) for step in self.steps],
                "step": 0,
            }
            endpoint._update_state(rollout=rollout)
            self._recorder(rollout).record(
                PHASE, "started", {"phase": "started", "weight": None, "message": f"{self.strategy} rollout started"}
            )
        else:
            log.info(
                "Resuming the rollout of %s version %s at step %d of %d.",
                self.model_name, version, rollout["step"] + 1, len(self.steps),
            )  # fmt: skip
        fault_point("deploy.after_candidate_started")
        # The stable version is judged against while the rollout lasts: awake, with no cold start in its windows.
        endpoint.route_traffic(stable, scale_to_zero=False)
        try:
            endpoint.ensure_awake(stable)
        except RolloutFailedError as exc:
            self._roll_back(rollout, "failed", "WakeFailed", str(exc))
            raise
        judge = self.judge or probe_judge(
            candidate["url"],
            self.model_name,
            self.analysis,
            training_set=self.training_set,
            timeout=self.progress_deadline,
        )
        judgements: list[dict[str, Any]] = []
        for index in range(rollout["step"], len(self.steps)):
            judgement = self._run_step(rollout, index, stable, candidate, judge)
            judgements.append(judgement)
            if judgement["verdict"] != PASS:
                inconclusive = judgement["verdict"] == INCONCLUSIVE
                reason = "AnalysisInconclusive" if inconclusive else "AnalysisFailed"
                step = self.steps[index]
                message = (
                    f"Step {index + 1} ({step.mode} at {step.weight}%) "
                    + ("stayed inconclusive until its deadline" if inconclusive else "failed")
                    + f": {judgement.get('message')}"
                )
                self._roll_back(rollout, "rolled_back", reason, message)
                return {
                    **base, "status": "rolled_back", "revision": stable["color"], "traffic": {stable["color"]: 100},
                    "analysis": {"steps": judgements}, "reason": reason, "message": message,
                }  # fmt: skip
            rollout["step"] = index + 1
            endpoint._update_state(rollout=rollout)
        candidate["verified_version"] = version
        endpoint.switch(candidate)  # candidate becomes the primary; the stable colour stops after the drain
        self._recorder(rollout).record(
            RESULT, "final", {"outcome": "promoted", "message": f"Version {version} serves all traffic."}
        )
        return {
            **base,
            "status": "promoted",
            "revision": candidate["color"],
            "traffic": {candidate["color"]: 100},
            "analysis": {"steps": judgements},
        }

    def _run_step(self, rollout: dict, index: int, stable: dict, candidate: dict, judge: Judge) -> dict[str, Any]:
        """Route the step's traffic, wait windows and judge until a verdict or the step's deadline."""
        step = self.steps[index]
        if step.mode == SHADOW:
            self.endpoint.route_traffic(stable, shadow=candidate, percent=step.weight)
        else:
            self.endpoint.route_traffic(stable, canary=candidate, weight=step.weight)
        recorder = self._recorder(rollout)
        recorder.record(
            PHASE,
            f"step-{index + 1}",
            {"phase": step.mode, "weight": step.weight, "message": f"step {index + 1} of {len(self.steps)}"},
        )
        start = datetime.now(UTC)
        give_up = time.monotonic() + self.inconclusive_wait
        attempt = 0
        while True:
            attempt += 1
            self._sleep(self.step_window)
            end = datetime.now(UTC)
            judgement = judge(
                mode=step.mode,
                model_name=self.model_name,
                stable_version=rollout["stable_version"],
                candidate_version=rollout["version"],
                start=start,
                end=end,
                weight=step.weight,
            )
            verdict = judgement.get("verdict")
            if verdict not in (PASS, FAIL, INCONCLUSIVE):
                raise RolloutFailedError(
                    f"The rollout judge returned verdict {verdict!r} for step {index + 1}; expected one of "
                    f"{[PASS, FAIL, INCONCLUSIVE]}.",
                    reason="BadJudge",
                )
            details = {
                **judgement,
                "step": index + 1,
                "mode": step.mode,
                "weight": step.weight,
                "attempt": attempt,
                "window_seconds": (end - start).total_seconds(),
            }
            recorder.record(SHADOW_EVENT if step.mode == SHADOW else ANALYSIS, index + 1, details)
            if verdict != INCONCLUSIVE:
                return details
            if time.monotonic() + self.step_window > give_up:
                if self.on_inconclusive == "probes":
                    return self._probes_decide(rollout, index, candidate, details, recorder)
                return details  # never passes: the caller fails the step
            log.info(
                "Step %d (%s at %d%%) is inconclusive after %.0f s: waiting for more traffic.",
                index + 1, step.mode, step.weight, details["window_seconds"],
            )  # fmt: skip
