"""Local serving backend: the KServe predictor (and Feast transformer) as local processes, replaced blue/green.

Layout under ``settings.serving_root``:

* ``endpoint.json`` -- the live upstream the stable-port proxy forwards to (``{"upstream": "127.0.0.1:<port>"}``);
* ``deployment.json`` -- the live slot (colour, model version, storage URI, pids and ports) and the proxy;
* ``pids/<colour>-<component>.pid`` -- each process's pid; ``logs/<colour>-<component>.log`` -- its output.

The stable endpoint is ``http://127.0.0.1:<settings.local_serving_port>``, served by ``mlops_serving.proxy``.
:class:`BlueGreenRollout` starts the new colour on free ports next to the live one, waits until it is ready,
analyses it (smoke requests), then switches the proxy and stops the old colour after a grace period, or discards
the new colour. Processes are supervised by :mod:`mlops_provider.utils.process`: they run in their own session,
so they outlive the Airflow task that started them; re-deploying the version that is already live is a no-op.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import MlopsError, RolloutFailedError
from mlops_provider.serving.analysis import AnalysisConfig, http_get_json, run_analysis
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


class LocalEndpoint:
    """Start, check, switch and stop local model servers behind the stable endpoint.

    :param settings: bundle settings (default :func:`~mlops_provider.settings.get_settings`).
    :param startup_timeout: seconds a new server may take to become ready.
    :param drain_seconds: seconds the old colour keeps running after the switch, for in-flight requests.
    :param bind_host: address every process (proxy, predictor, transformer) listens on; loopback unless a caller
        explicitly exposes the endpoint to the network.
    """

    def __init__(
        self,
        *,
        settings: MlopsSettings | None = None,
        startup_timeout: float = 120.0,
        drain_seconds: float = 1.0,
        bind_host: str = "127.0.0.1",
    ) -> None:
        super().__init__()
        self._settings = settings
        self.bind_host = bind_host
        self.startup_timeout = startup_timeout
        self.drain_seconds = drain_seconds

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

    def _read_state(self) -> dict:
        try:
            return json.loads(self._deployment_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _write_json(self, path: Path, data: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)

    def _update_state(self, **changes: Any) -> dict:
        state = self._read_state()
        state.update(changes)
        self._write_json(self._deployment_file, state)
        return state

    def active(self) -> dict | None:
        """Return the live slot if its processes run, else None."""
        slot = self._read_state().get("active")
        if slot and self.slot_alive(slot):
            return dict(slot)
        return None

    @staticmethod
    def slot_alive(slot: dict) -> bool:
        """Whether every process of ``slot`` runs."""
        return all(process_alive(slot[c]["pid"], SERVER_MARKER) for c in COMPONENTS if slot.get(c))

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
    ) -> dict:
        """Start a new colour (predictor, plus the Feast transformer) and wait until it is ready.

        :param feast_config: resolved ``feature_store.yaml`` for the feature lookup of entity requests; ``None``
            serves the predictor alone (feature rows only).
        :param feature_service: the FeatureService the model was trained on (required with ``feast_config``).
        :param serving_mode: with ``feast_config``, where the lookup runs: ``transformer`` (a Feast transformer in
            front of the predictor) or ``fused`` (in the predictor's process: no transformer, no hop).
        :param env: extra environment for the servers (e.g. ``MLFLOW_TRACKING_URI``; never logged).
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
        server_env = self._env(env)
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
            "model_name": model_name,
            "model_version": str(model_version),
            "storage_uri": storage_uri,
            "serving_mode": serving_mode if feast_config else None,
            "started_at": datetime.now(UTC).isoformat(),
            "predictor": {"http_port": predictor_port, "grpc_port": predictor_grpc, "log": f"{color}-predictor.log"},
            "transformer": None,
        }
        slot["predictor"]["pid"] = self._spawn(predictor_args, f"{color}-predictor", server_env)
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
                slot["transformer"]["pid"] = self._spawn(args, f"{color}-transformer", server_env)
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
        self._write_json(
            self._endpoint_file,
            {"upstream": slot["upstream"], "color": slot["color"], "model_version": slot["model_version"]},
        )
        self._update_state(active=slot, candidate=None, previous=previous)
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
        """Stop the processes of ``slot`` (transformer first)."""
        for component in reversed(COMPONENTS):
            info = slot.get(component)
            if info and info.get("pid"):
                stop_process(info["pid"], marker=SERVER_MARKER)
                self._pid_file(f"{slot.get('color')}-{component}").unlink(missing_ok=True)

    def stop_all(self) -> None:
        """Stop every process of the local endpoint (live colour, candidate and proxy)."""
        state = self._read_state()
        for key in ("candidate", "active"):
            if state.get(key):
                self.stop_slot(state[key])
        if state.get("proxy"):
            stop_process(state["proxy"].get("pid"), marker=PROXY_MARKER)
            self._pid_file("proxy").unlink(missing_ok=True)
        # A process interrupted before its slot reached the state file is known by its pid file only.
        for pid_file in sorted((self.root / "pids").glob("*.pid")):
            stop_process(read_pid(pid_file), marker=SERVER_MARKER)
            pid_file.unlink(missing_ok=True)
        self._endpoint_file.unlink(missing_ok=True)
        self._write_json(self._deployment_file, {})


class BlueGreenRollout:
    """Deploy a version on the local endpoint: start it next to the live colour, analyse it, switch or discard.

    :param endpoint: the local endpoint.
    :param model_name: registered model name.
    :param analysis: how the new colour is judged.
    :param progress_deadline: seconds the analysis may take.
    :param training_set: training-set manifest to draw smoke rows from.
    """

    def __init__(
        self,
        endpoint: LocalEndpoint,
        *,
        model_name: str,
        analysis: AnalysisConfig,
        progress_deadline: float = 600.0,
        training_set: dict | str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.model_name = model_name
        self.analysis = analysis
        self.progress_deadline = progress_deadline
        self.training_set = training_set

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
            if live.get("verified_version") != version:
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
