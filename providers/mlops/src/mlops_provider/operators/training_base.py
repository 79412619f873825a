"""What every training operator shares: argument handling and reading the result back from MLflow.

The backends (``training_local``, ``training_kubernetes``, ``training_vertex``) combine
:class:`XGBoostTrainMixin` with their operator base;
:func:`~mlops_provider.operators.training.training_operator_class` picks one when the DAG is built.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlops_provider.exceptions import TrainingFailedError
from mlops_provider.links.mlflow import persist_mlflow_links
from mlops_provider.payloads import PayloadError, TrainingResult, parse_payload
from mlops_provider.settings import get_settings
from mlops_provider.training.launch import AirflowIds, TrainerLaunch, file_sha256
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from mlops_provider.hooks.mlflow import MlflowHook

    _OperatorBase = BaseOperator
else:
    _OperatorBase = object

DEFAULT_PARAMS_FILE = "include/trainer/params.yaml"
#: Arguments every training operator takes, templated the same way in each.
TRAINING_TEMPLATE_FIELDS: tuple[str, ...] = ("model_name", "training_set", "params_file", "run_name", "mlflow_conn_id")


class XGBoostTrainMixin(_OperatorBase):
    """Argument handling and result reading shared by the training operators of every backend.

    Not an operator on its own: each backend combines it with its operator base (``BaseOperator``,
    ``KubernetesPodOperator``) and calls :meth:`_init_training` from ``__init__``.
    """

    backend: ClassVar[str]
    model_name: str
    training_set: dict[str, Any] | str
    params_file: str
    run_name: str | None
    mlflow_conn_id: str | None
    render_only: bool
    code_version: str | None

    def _init_training(
        self,
        *,
        model_name: str,
        training_set: dict[str, Any] | str,
        params_file: str,
        run_name: str | None,
        mlflow_conn_id: str | None,
        render_only: bool,
        code_version: str | None,
    ) -> None:
        self.model_name = model_name
        self.training_set = training_set
        self.params_file = params_file
        self.run_name = run_name
        self.mlflow_conn_id = mlflow_conn_id
        self.render_only = render_only
        self.code_version = code_version

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        """MLflow hook of ``mlflow_conn_id`` (named so, not ``hook``: KubernetesPodOperator owns that name)."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id)

    # ------------------------------------------------------------------ inputs
    def training_set_identity(self) -> tuple[str, str]:
        """Return ``(uri, content hash)`` of the training set: the manifest's, or the URI given directly.

        A bare URI stands for its own hash: snapshot folders are content-addressed (``<hash>/data.parquet``).
        """
        ts = self.training_set
        if isinstance(ts, str) and not ts.strip().startswith("{"):
            if not ts.strip():
                raise TrainingFailedError("no training set given: pass the FeastTrainingSetOperator's output or a URI")
            return ts, ts
        try:
            manifest = parse_payload(ts, name="training_set")
        except PayloadError as exc:
            raise TrainingFailedError(str(exc)) from exc
        uri = manifest.get("uri")
        if not uri:
            raise TrainingFailedError(f"the training-set manifest has no 'uri' (keys: {sorted(manifest)})")
        return str(uri), str(manifest.get("hash") or uri)

    def params_path(self) -> Path:
        """The params file on this machine (relative paths are under the project root)."""
        path = Path(self.params_file)
        return path if path.is_absolute() else get_settings().project_root / path

    def default_run_name(self, context: Context | None) -> str:
        """The MLflow run name: ``run_name`` or the model name."""
        return self.run_name or self.model_name

    def resolved_code_version(self) -> str:
        """What identifies the trainer's code for the idempotency key (``code_version`` or a backend default)."""
        raise NotImplementedError

    def trainer_launch(self, context: Context | None, *, params_file: str | None = None) -> TrainerLaunch:
        """The launch of this task instance; ``params_file`` is the path the trainer sees (default as given)."""
        uri, digest = self.training_set_identity()
        return TrainerLaunch(
            model_name=self.model_name,
            training_set_uri=uri,
            training_set_hash=digest,
            params_file=params_file or self.params_file,
            params_hash=file_sha256(self.params_path()) or "",
            code_version=self.resolved_code_version(),
            airflow=AirflowIds.from_context(context),
            run_name=self.default_run_name(context),
        )

    def require_remote_mlflow(self) -> None:
        """Fail when the MLflow store only exists on this worker (a pod or a cloud job cannot reach it)."""
        if self.mlflow_hook.is_local:
            raise TrainingFailedError(
                f"The {self.backend} training backend needs an MLflow tracking server the trainer can reach: create "
                f"the connection {self.mlflow_hook.mlflow_conn_id!r} (type mlflow, host = the server URL); the local "
                "SQLite store only exists on this worker."
            )

    def require_reachable_training_set(self, reader: str) -> None:
        """Fail before launching when ``reader`` (a pod, a cloud job) could not read the training set."""
        from mlops_provider.reachability import DATA_ROOT_SETTING, require_cluster_reachable

        uri, _ = self.training_set_identity()
        require_cluster_reachable(uri, what="training set", reader=reader, setting=DATA_ROOT_SETTING)

    # ------------------------------------------------------------------ results
    def registered_result(self, key: str, where: str) -> TrainingResult:
        """The version the trainer registered under idempotency ``key``; fail naming ``where`` it ran if none."""
        from mlops_provider.training.registry import find_training_result

        result = find_training_result(self.mlflow_hook.get_client(), self.model_name, key)
        if result is None:
            raise TrainingFailedError(
                f"{where} succeeded but MLflow has no model version of {self.model_name} with idempotency key "
                f"{key!r}: check its log and that it reached {self.mlflow_hook.tracking_uri}."
            )
        return result

    def finish_training(self, context: Context, result: TrainingResult, **extra: Any) -> TrainingResult:
        """Persist the MLflow links, log the outcome and return the result tagged with its backend."""
        fault_point("training.after_register")
        final: TrainingResult = {**result, **extra}  # type: ignore[typeddict-item]
        final["backend"] = self.backend
        persist_mlflow_links(
            context,
            self.mlflow_hook,
            experiment_id=final.get("experiment_id"),
            run_id=final.get("run_id"),
            model_name=final.get("model_name"),
            version=final.get("model_version"),
        )
        metrics = final.get("metrics", {})
        self.log.info(
            "Model %s version %s (run %s, %s on %s): roc_auc=%.4f pr_auc=%.4f%s",
            final.get("model_name"),
            final.get("model_version"),
            final.get("run_id"),
            final.get("device"),
            self.backend,
            metrics.get("roc_auc", float("nan")),
            metrics.get("pr_auc", float("nan")),
            " (reused the version an earlier try registered)" if final.get("reused") else "",
        )
        return final

    def write_render(self, context: Context | None, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Write ``spec`` to ``<local_root>/render/`` and return where (nothing is submitted)."""
        import yaml

        folder = get_settings().local_root / "render"
        if context:
            folder = folder / context["ti"].dag_id / str(context["run_id"]).replace(":", "_").replace("+", "_")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.task_id}.{kind}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        self.log.info("Rendered the %s %s spec to %s (nothing was submitted).", self.backend, kind, path)
        return {"backend": self.backend, "kind": kind, "path": str(path), "spec": spec}
