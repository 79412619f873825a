"""Chaos through the real scheduler: task processes SIGKILLed at named fault points, retried by Airflow.

Airflow runs as in production (``tests/chaos/airflow_cluster.py``: scheduler with LocalExecutor, DAG processor,
API server; SQLite), the DAGs are the bundle's operators (``tests/chaos/dags``) with ``retries=1``. Each scenario
arms one fault point (:mod:`mlops_provider.utils.faults`): the first task process to reach it SIGKILLs itself,
so no ``finally`` and no ``on_kill`` runs, as when the OOM killer or a lost node takes a worker. The scheduler
notices, the retry runs, and the test then checks the invariants of the fault-safety issue on the systems of
record (MLflow registry, data zones, the fake cluster, the processes on this machine):

- I1 ``champion`` names only a version that passed the gate and its rollout analysis, and it is what serves;
- I2 one registry version per training key;
- I3 the validated zone never holds output of a failed validation; valid + quarantined == input;
- I4 nothing left behind (trainer processes, pods, canaries, local servers);
- I5 rollout state is recovered from the system of record (the InferenceService annotation);
- I6 two runs racing for one model never both promote; the loser fails with a clear message.

Scenarios run in waves that share the scheduler (runs of one wave execute concurrently, as they would).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from tests.chaos.airflow_cluster import ChaosAirflow, running_airflow
from tests.loopback import free_port

# A wave runs several DAGs at once on two cores; its fixture waits for all of them.
pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(2400)]

REPO_ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------------- harness
@pytest.fixture(scope="module")
def chaos_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="module")
def airflow(chaos_root, mlflow_server, _fake_k8s_server) -> ChaosAirflow:
    extra = {
        "AIRFLOW_CONN_MLFLOW_DEFAULT": mlflow_server.connection_json(),
        f"AIRFLOW_CONN_{_fake_k8s_server.conn_id.upper()}": _fake_k8s_server.connection_json(),
        "AIRFLOW__MLOPS__KUBERNETES_CONN_ID": _fake_k8s_server.conn_id,
        "AIRFLOW__MLOPS__NAMESPACE": "chaos",
        # The fake cluster's kubelet runs pods on this machine: its paths are theirs.
        "AIRFLOW__MLOPS__CLUSTER_SHARES_LOCAL_PATHS": "True",
        "AIRFLOW__MLOPS__PROJECT_ROOT": str(REPO_ROOT),
        "AIRFLOW__MLOPS__LOCAL_ROOT": str(chaos_root / "local"),
        "AIRFLOW__MLOPS__DATA_ROOT": str(chaos_root / "data"),
        "AIRFLOW__MLOPS__LOCAL_SERVING_PORT": str(free_port()),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    with running_airflow(chaos_root, extra) as running:
        yield running


def fired_and_retried(airflow: ChaosAirflow, dag_id: str, run_id: str, point: str, task_id: str) -> dict:
    """The fault fired, the killed try failed, the retry succeeded, and the run succeeded; return the task's XCom."""
    state = airflow.wait(dag_id, run_id)
    tis = airflow.task_instances(dag_id, run_id)
    assert airflow.fired(dag_id, point), f"fault point {point} never fired in {dag_id}: {tis}"
    assert state == "success", (
        f"{dag_id}: {tis}\n{airflow.task_log(dag_id, run_id, task_id, tis[task_id]['try_number'])}"
    )
    assert tis[task_id]["try_number"] == 2, f"{task_id} of {dag_id} was not retried exactly once: {tis}"
    return airflow.xcom(dag_id, run_id, task_id)


def processes_with(*needles: str) -> list[str]:
    """Command lines of live processes on this machine that contain every needle."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if status != "Z" and all(n in cmdline for n in needles):
            found.append(cmdline)
    return found


def registry_versions(mlflow_server, model_name: str) -> list:
    from mlflow import MlflowClient

    return MlflowClient(mlflow_server.url).search_model_versions(f"name='{model_name}'")


# ------------------------------------------------------------------------------------ wave 1: training and data
DATA_DAYS = ["2026-03-02", "2026-03-03", "2026-03-04"]


def land_days(data_root: Path, dataset: str, broken: set[str] = frozenset()) -> dict[str, int]:
    """Land one generated file per day (``broken`` days carry 15% duplicate ids); return rows per day."""
    import datetime as dt

    import pandas as pd

    from include.data_generator import generate_day

    rows = {}
    for i, day in enumerate(DATA_DAYS):
        df = generate_day(dt.date.fromisoformat(day), 150 + 10 * i)
        if day in broken:
            df = pd.concat([df, df.iloc[:25]], ignore_index=True)
        target = data_root / "landing" / dataset / f"dt={day}" / "part-0.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(target, index=False)
        rows[day] = len(df)
    return rows


@pytest.fixture(scope="module")
def wave1(airflow, chaos_root, mlflow_server, _fake_k8s_server, training_snapshot, fast_params_file):
    """Arm and trigger the training, data and cooldown scenarios at once; return what each test needs."""
    import base64

    from tests.integration.training.test_kubernetes import kubelet_running_the_trainer

    k8s = _fake_k8s_server
    k8s.reset()
    k8s.put_object(
        "", "v1", "chaos", "secrets",
        {"kind": "Secret", "metadata": {"name": "mlflow-credentials"}, "type": "Opaque",
         "data": {"MLFLOW_TRACKING_USERNAME": base64.b64encode(b"trainer").decode()}},
    )  # fmt: skip
    workdir = chaos_root / "kubelet"
    workdir.mkdir()
    k8s.set_pod_behavior("succeeded", run=kubelet_running_the_trainer(k8s, workdir), pending_seconds=0.3)
    data_root = chaos_root / "data"
    train = {"training_set": training_snapshot, "params_file": fast_params_file}
    scenarios = {
        "chaos_train_after_register": ("training.after_register", {"model_name": "chaos_register", **train}),
        "chaos_train_after_launch": ("training.after_launch", {"model_name": "chaos_launch", **train}),
        "chaos_train_pod_created": (
            "training.after_pod_created",
            {"model_name": "chaos_pod", "mlflow_tracking_uri": mlflow_server.url, **train},
        ),
        "chaos_ingest_mid_write": (
            "ingestion.mid_write",
            {"dataset": "chaos_ingest", "start": DATA_DAYS[0], "end": DATA_DAYS[-1]},
        ),
        "chaos_validation_mid_write": (
            "validation.mid_write",
            {"dataset": "chaos_validation", "start": DATA_DAYS[0], "end": DATA_DAYS[-1]},
        ),
        "chaos_cooldown": ("cooldown.after_launch_recorded", {"model_name": "chaos_cooldown"}),
        "chaos_materialize": (
            "feast.mid_materialize",
            {"dataset": "transactions", "start": DATA_DAYS[0], "end": DATA_DAYS[-1]},
        ),
    }
    landed = {
        "transactions": land_days(data_root, "transactions"),
        "chaos_ingest": land_days(data_root, "chaos_ingest"),
        "chaos_validation": land_days(data_root, "chaos_validation", broken={DATA_DAYS[1]}),
    }
    airflow.wait_for_dags(list(scenarios))
    runs = {}
    for dag_id, (point, conf) in scenarios.items():
        airflow.arm(dag_id, point)
        runs[dag_id] = airflow.trigger(dag_id, conf)
    return {"runs": runs, "landed": landed, "data_root": data_root, "k8s": k8s, "points": scenarios}


def test_kill_after_the_version_is_registered_reuses_it_on_retry(airflow, wave1, mlflow_server):
    """I2: the trainer registered the version, the task died before returning; the retry returns that version."""
    dag_id = "chaos_train_after_register"
    result = fired_and_retried(airflow, dag_id, wave1["runs"][dag_id], "training.after_register", "train")
    versions = registry_versions(mlflow_server, "chaos_register")
    assert [v.version for v in versions] == [result["model_version"]]
    assert result["reused"] is True


def test_kill_after_the_trainer_started_stops_the_orphan_and_registers_once(airflow, wave1, mlflow_server):
    """I2 + I4: the killed task's trainer kept running; the retry stops it, trains once, nothing is left running."""
    dag_id = "chaos_train_after_launch"
    result = fired_and_retried(airflow, dag_id, wave1["runs"][dag_id], "training.after_launch", "train")
    versions = registry_versions(mlflow_server, "chaos_launch")
    assert [v.version for v in versions] == [result["model_version"]]
    assert processes_with("include.trainer", "chaos_launch") == []


def test_kill_after_the_training_pod_is_created_reattaches_to_it(airflow, wave1, mlflow_server):
    """I2 + I4: the retry adopts the pod the killed try created; one pod ran, one version, the pod is deleted."""
    dag_id = "chaos_train_pod_created"
    result = fired_and_retried(airflow, dag_id, wave1["runs"][dag_id], "training.after_pod_created", "train")
    k8s = wave1["k8s"]
    created = [p for p in k8s.created_pods if "chaos_pod" in json.dumps(p["spec"])]
    assert len(created) == 1, [p["metadata"]["name"] for p in created]
    assert [p for p in k8s.pods("chaos") if "chaos_pod" in json.dumps(p["spec"])] == []
    versions = registry_versions(mlflow_server, "chaos_pod")
    assert [v.version for v in versions] == [result["model_version"]]


def _assert_nothing_lost(data_root: Path, dataset: str, landed: dict[str, int]) -> dict[str, bool]:
    """I3 per day: raw == landed, validated only for published days, valid + quarantined == raw by id."""
    import pandas as pd

    published = {}
    for day, rows in landed.items():
        raw = pd.read_parquet(data_root / "raw" / dataset / f"dt={day}" / "data.parquet")
        assert len(raw) == rows
        report = json.loads((data_root / "reports/validation" / dataset / f"dt={day}" / "report.json").read_text())
        validated = data_root / "validated" / dataset / f"dt={day}" / "data.parquet"
        assert validated.exists() == report["published"]
        valid = pd.read_parquet(validated) if report["published"] else raw.iloc[0:0]
        quarantine = pd.read_parquet(data_root / "quarantine" / dataset / f"dt={day}" / "data.parquet")
        ids = Counter(map(str, valid["transaction_id"])) + Counter(map(str, quarantine["transaction_id"]))
        assert ids == Counter(map(str, raw["transaction_id"]))
        published[day] = report["published"]
    return published


def test_kill_mid_ingestion_leaves_raw_partitions_that_equal_the_source(airflow, wave1):
    """Idempotent per interval: the retry rewrites every day; each raw partition equals what landed; I3 holds."""
    dag_id = "chaos_ingest_mid_write"
    fired_and_retried(airflow, dag_id, wave1["runs"][dag_id], "ingestion.mid_write", "ingest")
    published = _assert_nothing_lost(wave1["data_root"], "chaos_ingest", wave1["landed"]["chaos_ingest"])
    assert all(published.values())


def test_kill_mid_validation_write_never_publishes_a_failed_partition(airflow, wave1):
    """I3: killed after the first day's writes; the retry fails on the broken day and publishes none of it."""
    dag_id, run_id = "chaos_validation_mid_write", wave1["runs"]["chaos_validation_mid_write"]
    assert airflow.wait(dag_id, run_id) == "failed"
    assert airflow.fired(dag_id, "validation.mid_write")
    tis = airflow.task_instances(dag_id, run_id)
    assert tis["validate"] == {"state": "failed", "try_number": 2}
    published = _assert_nothing_lost(wave1["data_root"], "chaos_validation", wave1["landed"]["chaos_validation"])
    assert published == {DATA_DAYS[0]: True, DATA_DAYS[1]: False, DATA_DAYS[2]: True}


def test_kill_mid_materialization_leaves_the_online_store_exact(airflow, wave1):
    """The retry rebuilds the aggregates and materializes the chunks left: the online store answers the exact count."""
    import datetime as dt

    import pandas as pd

    from mlops_provider.hooks.feast import FeastHook
    from mlops_provider.settings import reset_settings

    dag_id = "chaos_materialize"
    result = fired_and_retried(airflow, dag_id, wave1["runs"][dag_id], "feast.mid_materialize", "materialize_features")
    assert all(rows > 0 for rows in result["feature_rows"].values()), result
    # Killed right after its first chunk was checkpointed: the retry goes on from the second.
    assert (result["chunks"], result["chunks_resumed"]) == (3, 1), result
    _assert_nothing_lost(wave1["data_root"], "transactions", wave1["landed"]["transactions"])
    validated = pd.concat(
        pd.read_parquet(wave1["data_root"] / "validated" / "transactions" / f"dt={day}" / "data.parquet")
        for day in DATA_DAYS
    )
    customer = int(validated["customer_id"].iloc[-1])
    end = pd.Timestamp(dt.date.fromisoformat(DATA_DAYS[-1]) + dt.timedelta(days=1), tz="UTC")
    events = validated[validated["customer_id"] == customer]["event_timestamp"]
    expected = int(((events >= end - pd.Timedelta(days=7)) & (events < end)).sum())
    with pytest.MonkeyPatch.context() as env:
        for key, value in airflow.env.items():
            if key.startswith("AIRFLOW__MLOPS__"):
                env.setenv(key, value)
        reset_settings()
        try:
            store = FeastHook().get_feature_store()
            served = store.get_online_features(
                features=["customer_stats:customer_txn_count_7d"], entity_rows=[{"customer_id": customer}]
            ).to_dict()
        finally:
            env.undo()
            reset_settings()
    assert served["customer_txn_count_7d"] == [expected] and expected > 0


def test_kill_after_the_cooldown_recorded_its_launch_proceeds_on_retry_once(airflow, wave1):
    """The retry recognises its own recorded launch: it proceeds, and the model's launches hold one entry."""
    dag_id, run_id = "chaos_cooldown", wave1["runs"]["chaos_cooldown"]
    result = fired_and_retried(airflow, dag_id, run_id, "cooldown.after_launch_recorded", "retraining_cooldown")
    assert result["decision"] == "proceed" and result["reason"].startswith(f"retry of {dag_id}/{run_id}")
    launches = json.loads(airflow.request("GET", "/variables/mlops_retraining_launches__chaos_cooldown")["value"])
    assert [entry["run"] for entry in launches] == [f"{dag_id}/{run_id}"]
    # Its audit entry was written before the launch was recorded, by the killed try; the retry kept it.
    from mlops_provider.audit import read_audit

    entries = read_audit("chaos_cooldown", data_root=str(wave1["data_root"]))
    mine = [(e["kind"], e["outcome"], e["actor"]["try_number"]) for e in entries if e["actor"]["run_id"] == run_id]
    assert mine == [("retraining_decision", "proceed", 1)], entries


# ------------------------------------------------------------------------------ wave 2: gate and KServe rollout
NAMESPACE = "chaos"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


class ServingWorld:
    """Registered versions with real model servers behind the fake KServe controller, one model per scenario."""

    def __init__(self, root: Path, mlflow_server, k8s) -> None:
        from mlflow import MlflowClient

        from tests.fake_k8s.kserve import KServeController
        from tests.loopback import free_port

        self.root, self.mlflow_server, self.k8s = root, mlflow_server, k8s
        self.client = MlflowClient(mlflow_server.url)
        self.urls: dict[str, str] = {}
        self.servers: list = []
        dead = f"http://127.0.0.1:{free_port()}"
        k8s.add_controller(
            PLURAL, KServeController(url_for=lambda uri: self.urls.get(uri, dead), is_broken=lambda _: False)
        )

    def local_path(self, uri: str) -> Path:
        """Where an ``mlflow-artifacts:/`` URI of the session's server lives on disk."""
        return self.mlflow_server.artifacts_destination / uri.removeprefix("mlflow-artifacts:/")

    def serve(self, model_name: str, version: str, storage_uri: str, model_dir: Path):
        """Start a predictor answering as ``model_name`` version ``version`` for revisions of ``storage_uri``."""
        from tests.serving_support import start_server

        server = start_server(
            [f"--storage_uri={model_dir.as_uri()}", f"--model_version={version}"],
            self.root / f"{model_name}-{version}.log",
            model_name,
        )
        self.servers.append(server)
        self.urls[storage_uri] = server.url
        return server

    def register_copies(self, model_name: str, serving_models, training_set_dir: Path) -> dict[str, dict]:
        """Register the serving fixtures' v1 and v2 under ``model_name`` (own copies, own URIs); start servers."""
        import shutil

        from mlops_provider.lineage import TRAINING_SET_URI_TAG

        experiment = self.client.get_experiment_by_name("chaos") or self.client.get_experiment(
            self.client.create_experiment("chaos")
        )
        self.client.create_registered_model(model_name)
        candidates = {}
        for key in ("v1", "v2"):
            copy = self.root / model_name / key
            shutil.copytree(serving_models[key].path, copy)
            run = self.client.create_run(
                experiment.experiment_id, tags={TRAINING_SET_URI_TAG: training_set_dir.as_uri()}
            )
            self.client.log_artifacts(run.info.run_id, str(copy), "model")
            self.client.set_terminated(run.info.run_id)
            mv = self.client.create_model_version(model_name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
            self.serve(model_name, mv.version, copy.as_uri(), copy)
            candidates[key] = {
                "decision": "promote",
                "model_name": model_name,
                "candidate_version": mv.version,
                "artifact_uri": copy.as_uri(),
                "model_uri": f"models:/{model_name}/{mv.version}",
                "run_id": run.info.run_id,
            }
        return candidates

    def deploy_existing(self, model_name: str, candidate: dict) -> None:
        """An InferenceService already serving ``candidate`` as ``champion`` (a finished earlier rollout)."""
        from mlops_provider.hooks.kserve import KServeHook
        from mlops_provider.serving.manifests import k8s_name, render_inference_service

        body = render_inference_service(
            model_name, candidate["artifact_uri"], name=k8s_name(model_name), namespace=NAMESPACE,
            model_version=candidate["candidate_version"], feature_service="chaos_features_v1",
        )  # fmt: skip
        KServeHook(kubernetes_conn_id=self.k8s.conn_id, namespace=NAMESPACE).create_inference_service(body)
        self.client.set_registered_model_alias(model_name, "champion", candidate["candidate_version"])

    def isvc(self, model_name: str) -> dict | None:
        from mlops_provider.serving.manifests import k8s_name

        return self.k8s.get_object(GROUP, VERSION, NAMESPACE, PLURAL, k8s_name(model_name))

    def champion(self, model_name: str) -> str | None:
        try:
            return self.client.get_model_version_by_alias(model_name, "champion").version
        except Exception:
            return None

    def assert_serves_verified_champion(self, model_name: str, version: str, storage_uri: str) -> dict:
        """I1 + I4 + I5 on the cluster: champion is ``version``, the InferenceService serves it at 100% with no canary,
        and its rollout annotation records the passed analysis of that version."""
        from mlops_provider.lineage import PROMOTION_LOCK_TAG_PREFIX
        from mlops_provider.serving.rollout import ROLLOUT_STATE_ANNOTATION
        from tests.fake_k8s.kserve import model_location

        assert self.champion(model_name) == version
        isvc = self.isvc(model_name)
        predictor = isvc["spec"]["predictor"]
        assert model_location(predictor["model"]) == storage_uri
        assert "canaryTrafficPercent" not in predictor
        traffic = isvc["status"]["components"]["predictor"]["traffic"]
        assert [t["percent"] for t in traffic if t.get("latestRevision")] == [100], traffic
        state = json.loads(isvc["metadata"]["annotations"][ROLLOUT_STATE_ANNOTATION])
        assert state["phase"] == "promoted" and state["verified_version"] == version, state
        locks = [
            k for k in self.client.get_registered_model(model_name).tags if k.startswith(PROMOTION_LOCK_TAG_PREFIX)
        ]
        assert locks == [], f"promotion lock left behind: {locks}"
        return state

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def train_candidate(mlflow_server, training_snapshot, fast_params_file, workdir: Path, model_name: str, key: str):
    """A version trained by the real trainer (in this process), as the gate receives it from the train task."""
    from tests.fixtures.training_snapshot import train_in_process

    return train_in_process(training_snapshot, model_name, fast_params_file, mlflow_server.url, workdir, key)


@pytest.fixture(scope="module")
def wave2(airflow, chaos_root, mlflow_server, _fake_k8s_server, serving_models, training_snapshot, fast_params_file):
    """Gate and KServe scenarios, triggered together once wave 1 is over (its pods and trainers are gone)."""
    from mlops_provider.hooks.mlflow import MlflowHook

    airflow.wait_idle()
    k8s = _fake_k8s_server
    k8s.reset()
    # The test process reaches the cluster and the registry through the same connections as the tasks.
    env = pytest.MonkeyPatch()
    env.setenv(f"AIRFLOW_CONN_{k8s.conn_id.upper()}", k8s.connection_json())
    env.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", mlflow_server.connection_json())
    root = chaos_root / "serving"
    root.mkdir()
    world = ServingWorld(root, mlflow_server, k8s)
    training_set = root / "training-set"
    training_set.mkdir()
    (training_set / "manifest.json").write_text(
        json.dumps({"uri": training_set.as_uri(), "feature_service": "chaos_features_v1"})
    )
    try:
        patch = world.register_copies("chaos_patch", serving_models, training_set)
        canary = world.register_copies("chaos_canary", serving_models, training_set)
        promote = world.register_copies("chaos_promote", serving_models, training_set)
        world.deploy_existing("chaos_canary", canary["v1"])
        world.deploy_existing("chaos_promote", promote["v1"])
        # The gate scenarios need versions the real trainer produced (the gate scores them on the holdout).
        trained = {}
        for model_name, keys in (("chaos_gate", ["a"]), ("chaos_race", ["a", "b"])):
            for key in keys:
                result = train_candidate(
                    mlflow_server, training_snapshot, fast_params_file, root, model_name, f"chaos/{model_name}/{key}"
                )
                trained[(model_name, key)] = result
        hook = MlflowHook()
        for (model_name, _key), result in trained.items():
            uri = hook.version_download_uri(model_name, result["model_version"])
            world.serve(model_name, str(result["model_version"]), uri, world.local_path(uri))
        from tests.serving_support import wait_server

        for server in world.servers:
            wait_server(server)
        scenarios = {
            "chaos_deploy_after_patch": ("deploy.after_patch", {"model_name": "chaos_patch", "candidate": patch["v1"]}),
            "chaos_deploy_mid_canary": ("deploy.mid_canary", {"model_name": "chaos_canary", "candidate": canary["v2"]}),
            "chaos_deploy_before_promote": (
                "deploy.before_promote",
                {"model_name": "chaos_promote", "candidate": promote["v2"]},
            ),
            "chaos_gate_after_decision": (
                "gate.after_decision",
                {
                    "model_name": "chaos_gate",
                    "candidate": trained[("chaos_gate", "a")],
                    "training_set": training_snapshot,
                    "criteria": None,
                },
            ),
        }
        airflow.wait_for_dags([*scenarios, "chaos_race"])
        # Two runs race for one model (no pool): both candidates beat "no champion"; only one may promote.
        # Triggered first, so both gates get executor slots at once and really overlap.
        race = {}
        for key in ("a", "b"):
            conf = {
                "model_name": "chaos_race",
                "candidate": trained[("chaos_race", key)],
                "training_set": training_snapshot,
                "criteria": None,
            }
            race[key] = airflow.trigger("chaos_race", conf, run_id=f"race_{key}")
        runs = {}
        for dag_id, (point, conf) in scenarios.items():
            airflow.arm(dag_id, point)
            runs[dag_id] = airflow.trigger(dag_id, conf)
        yield {
            "world": world,
            "runs": runs,
            "race": race,
            "trained": trained,
            "candidates": {"patch": patch, "canary": canary, "promote": promote},
            "hook": hook,
        }
    finally:
        world.stop()
        env.undo()


def test_kill_after_the_inference_service_patch_analyses_before_promoting(airflow, wave2):
    """I1 + I5: the first deploy died after creating the InferenceService; the retry recovers the rollout from its
    annotation and analyses the version before ``champion`` moves (a serving endpoint alone proves nothing)."""
    dag_id = "chaos_deploy_after_patch"
    result = fired_and_retried(airflow, dag_id, wave2["runs"][dag_id], "deploy.after_patch", "deploy")
    v1 = wave2["candidates"]["patch"]["v1"]
    assert result["status"] == "promoted" and result["analysis"]["passed"]
    wave2["world"].assert_serves_verified_champion("chaos_patch", v1["candidate_version"], v1["artifact_uri"])


def test_kill_mid_canary_resumes_from_the_annotation_with_the_right_rollback_target(airflow, wave2):
    """I1 + I4 + I5: killed with the canary live; the retry keeps the old champion as the rollback target, judges the
    canary and promotes it; no canary split is left and ``champion`` is the served version."""
    dag_id = "chaos_deploy_mid_canary"
    fired_and_retried(airflow, dag_id, wave2["runs"][dag_id], "deploy.mid_canary", "deploy")
    v1, v2 = wave2["candidates"]["canary"]["v1"], wave2["candidates"]["canary"]["v2"]
    state = wave2["world"].assert_serves_verified_champion("chaos_canary", v2["candidate_version"], v2["artifact_uri"])
    assert state["previous_uri"] == v1["artifact_uri"], state


def test_kill_after_the_rollout_and_before_champion_moves_promotes_on_retry(airflow, wave2):
    """I1: the endpoint already serves the analysed version; the retry moves ``champion`` to it (no second rollout)."""
    dag_id = "chaos_deploy_before_promote"
    fired_and_retried(airflow, dag_id, wave2["runs"][dag_id], "deploy.before_promote", "deploy")
    v2 = wave2["candidates"]["promote"]["v2"]
    wave2["world"].assert_serves_verified_champion("chaos_promote", v2["candidate_version"], v2["artifact_uri"])


def test_kill_after_the_gate_decided_keeps_its_promotion_lock_for_the_retry(airflow, wave2):
    """I1 + I6: the gate died holding the promotion lock; its retry (same run, same owner) takes it again, the deploy
    promotes, and the lock is released at the end."""
    dag_id = "chaos_gate_after_decision"
    gate = fired_and_retried(airflow, dag_id, wave2["runs"][dag_id], "gate.after_decision", "evaluation_gate")
    assert gate["decision"] == "promote"
    version = str(wave2["trained"][("chaos_gate", "a")]["model_version"])
    uri = wave2["hook"].version_download_uri("chaos_gate", version)
    wave2["world"].assert_serves_verified_champion("chaos_gate", version, uri)


def test_two_runs_racing_gate_to_deploy_never_both_promote(airflow, wave2):
    """I6: two runs gate and deploy one model at once (no pool): one promotes, the other fails with a clear
    PromotionConflictError before touching the endpoint; ``champion`` is the winner's version and it serves."""
    states = {key: airflow.wait("chaos_race", run_id) for key, run_id in wave2["race"].items()}
    assert sorted(states.values()) == ["failed", "success"], states
    winner = next(key for key, state in states.items() if state == "success")
    loser = next(key for key, state in states.items() if state == "failed")
    loser_tis = airflow.task_instances("chaos_race", wave2["race"][loser])
    failed_task = next(task for task, ti in loser_tis.items() if ti["state"] == "failed")
    log = airflow.task_log("chaos_race", wave2["race"][loser], failed_task, loser_tis[failed_task]["try_number"])
    assert "PromotionConflictError" in log, log[-3000:]
    assert loser_tis[failed_task]["try_number"] == 1  # not retried: the other run's promotion decides
    version = str(wave2["trained"][("chaos_race", winner)]["model_version"])
    uri = wave2["hook"].version_download_uri("chaos_race", version)
    wave2["world"].assert_serves_verified_champion("chaos_race", version, uri)


# -------------------------------------------------------------------------------- wave 3: the local endpoint
@pytest.fixture(scope="module")
def wave3(airflow, wave2, chaos_root, serving_models):
    """The local blue/green backend: the first deploy dies with its candidate server running, before analysis."""
    from mlops_provider.serving.local import LocalEndpoint

    airflow.wait_idle()
    world = wave2["world"]
    root = chaos_root / "serving"
    training_set = root / "training-set"
    candidates = world.register_copies("chaos_local", serving_models, training_set)
    dag_id = "chaos_deploy_local"
    airflow.arm(dag_id, "deploy.after_candidate_started")
    run_id = airflow.trigger(dag_id, {"model_name": "chaos_local", "candidate": candidates["v1"]})
    settings_env = {k: v for k, v in airflow.env.items() if k.startswith("AIRFLOW__MLOPS__")}
    try:
        yield {"run_id": run_id, "candidates": candidates, "settings_env": settings_env}
    finally:
        from mlops_provider.settings import get_settings, reset_settings

        with pytest.MonkeyPatch.context() as patch:
            for key, value in settings_env.items():
                patch.setenv(key, value)
            reset_settings()
            LocalEndpoint(settings=get_settings()).stop_all()
        reset_settings()


def test_kill_with_the_local_candidate_running_leaves_one_analysed_server(airflow, wave3, chaos_root):
    """I1 + I4 + I5 (local): the retry stops the killed try's candidate (known from the endpoint's state file),
    starts and analyses its own, switches, and moves ``champion``; one predictor of the model runs."""
    dag_id = "chaos_deploy_local"
    result = fired_and_retried(airflow, dag_id, wave3["run_id"], "deploy.after_candidate_started", "deploy")
    v1 = wave3["candidates"]["v1"]
    assert result["status"] == "promoted" and result["analysis"]["passed"]
    state = json.loads((chaos_root / "local" / "serving" / "deployment.json").read_text())
    assert state["active"]["model_version"] == v1["candidate_version"] == state["active"]["verified_version"]
    assert not state.get("candidate")
    predictors = processes_with("mlops_serving", "--model_name=chaos_local", "--component=predictor")
    assert len(predictors) == 1, predictors
