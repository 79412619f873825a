"""The trainer as a subprocess on the Airflow worker (the ``local`` training backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import TrainingFailedError
from mlops_provider.lineage import ERROR_MARKER, RESULT_MARKER, TRAINER_MODULE, last_marked_line
from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink
from mlops_provider.operators.training_base import DEFAULT_PARAMS_FILE, TRAINING_TEMPLATE_FIELDS, XGBoostTrainMixin
from mlops_provider.payloads import TrainingResult
from mlops_provider.settings import get_settings
from mlops_provider.training.launch import source_digest
from mlops_provider.utils.faults import fault_point
from mlops_provider.utils.process import process_alive, read_pid, stop_process, write_pid_file

if TYPE_CHECKING:
    from airflow.sdk import Context


def result_from_marker(lines: list[str]) -> TrainingResult | None:
    """Return the result JSON of the last result-marker line of a trainer log, if any."""
    payload = last_marked_line(lines, RESULT_MARKER)
    return json.loads(payload) if payload else None


TRAINER_PID_FILE = "trainer.pid"


class XGBoostTrainLocalOperator(XGBoostTrainMixin, BaseOperator):
    """Train and register the XGBoost model in a subprocess on the Airflow worker.

    :param model_name: registered model name. (templated)
    :param training_set: the training-set manifest (``FeastTrainingSetOperator``'s XCom) or its URI. (templated)
    :param params_file: trainer parameter file, relative to the project root. (templated)
    :param run_name: MLflow run name; default ``<model_name>-<logical date>``. (templated)
    :param mlflow_conn_id: MLflow connection; default ``[mlops] mlflow_conn_id``. (templated)
    :param render_only: write the command line to ``<local_root>/render/`` and return it, run nothing.
    :param code_version: code identity in the idempotency key; default a digest of the trainer's sources.
    """

    backend = "local"
    template_fields = TRAINING_TEMPLATE_FIELDS
    template_fields_renderers = {"training_set": "json"}
    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#c7e9c0"

    def __init__(
        self,
        *,
        model_name: str,
        training_set: dict[str, Any] | str,
        params_file: str = DEFAULT_PARAMS_FILE,
        run_name: str | None = None,
        mlflow_conn_id: str | None = None,
        render_only: bool = False,
        code_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_training(
            model_name=model_name,
            training_set=training_set,
            params_file=params_file,
            run_name=run_name,
            mlflow_conn_id=mlflow_conn_id,
            render_only=render_only,
            code_version=code_version,
        )
        self._process: subprocess.Popen | None = None

    def default_run_name(self, context: Context | None) -> str:
        """``run_name``, else ``<model_name>-<logical date>`` (or ``-<run id>``)."""
        if self.run_name:
            return self.run_name
        if context and context.get("logical_date"):
            return f"{self.model_name}-{context['logical_date'].strftime('%Y%m%dT%H%M%S')}"
        if context and context.get("run_id"):
            return f"{self.model_name}-{context['run_id']}"
        return f"{self.model_name}-train"

    def resolved_code_version(self) -> str:
        """``code_version``, else a digest of the trainer package the subprocess will import."""
        if self.code_version:
            return self.code_version
        trainer = get_settings().project_root / Path(*TRAINER_MODULE.split("."))
        return f"sha256:{source_digest(trainer)}" if trainer.is_dir() else TRAINER_MODULE

    def trainer_env(self) -> dict[str, str]:
        """Environment of the trainer process: MLflow target and credentials, scoped to the child only."""
        hook = self.mlflow_hook
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AIRFLOW_CONN_"))}
        env["MLFLOW_TRACKING_URI"] = hook.tracking_uri
        if hook.registry_uri != hook.tracking_uri:
            env["MLFLOW_REGISTRY_URI"] = hook.registry_uri
        if hook.artifact_location:
            env["MLOPS_MLFLOW_ARTIFACT_ROOT"] = hook.artifact_location
        env.update(hook.credential_env())
        root = str(get_settings().project_root)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("MPLBACKEND", "Agg")
        return env

    def command(self, context: Context | None) -> dict[str, Any]:
        """The trainer's command line, working directory and result file (no secrets: env is not included)."""
        settings = get_settings()
        launch = self.trainer_launch(context, params_file=str(self.params_path()))
        folder = (launch.idempotency_key or "adhoc").replace("/", "_").replace(":", "_").replace("+", "_")
        output = settings.local_root / "training" / folder / "result.json"
        return {
            "argv": [sys.executable, "-m", TRAINER_MODULE, *launch.arguments(str(output), check_params=False)],
            "cwd": str(settings.project_root),
            "output_json": str(output),
        }

    def render(self, context: Context | None) -> dict[str, Any]:
        """Write the command line this task would run (runs nothing)."""
        return self.write_render(context, "command", self.command(context))

    def execute(self, context: Context) -> TrainingResult | dict[str, Any]:
        """Run the trainer and return the registered version."""
        if self.render_only:
            return self.render(context)
        command = self.command(context)
        output = Path(command["output_json"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.unlink(missing_ok=True)
        self.stop_orphan_trainer(output)
        self.log.info("Running the trainer: %s", " ".join(command["argv"]))
        lines: list[str] = []
        self._process = subprocess.Popen(
            command["argv"],
            cwd=command["cwd"],
            env=self.trainer_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: a later try can stop it whole
        )
        write_pid_file(output.with_name(TRAINER_PID_FILE), self._process.pid)
        fault_point("training.after_launch")
        assert self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if not line.startswith(RESULT_MARKER):
                self.log.info("[trainer] %s", line)
        code = self._process.wait()
        if code != 0:
            detail = last_marked_line(lines, ERROR_MARKER) or "\n".join(lines[-15:])
            raise TrainingFailedError(f"The local trainer exited with code {code}: {detail}")
        result = json.loads(output.read_text()) if output.is_file() else result_from_marker(lines)
        if result is None:
            raise TrainingFailedError(f"The local trainer exited 0 but wrote no result to {output}")
        return self.finish_training(context, result)

    def stop_orphan_trainer(self, output: Path) -> None:
        """Stop a trainer an earlier try of this same key left running (its task process was killed).

        Left alone it could finish and register a second version next to this try's (invariant I2), or hold
        the GPU/CPU this try needs. The pid is trusted only while the process's command line names this key's
        result file, so a reused pid is never stopped.
        """
        orphan = read_pid(output.with_name(TRAINER_PID_FILE))
        if process_alive(orphan, marker=str(output)):
            self.log.warning("Stopping trainer process %s left running by an earlier try of this key.", orphan)
            stop_process(orphan, marker=str(output))

    def on_kill(self) -> None:
        """Stop the trainer process."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
