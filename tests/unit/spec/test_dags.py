"""The DAG factory: ids, task chains, schedules, assets, and the spec's names on every operator."""

from __future__ import annotations

import pytest

from mlops_provider.spec.load import parse_spec
from tests.airflow_helpers import assert_chain
from tests.conftest import REPO_ROOT


@pytest.fixture
def spec(spec_dict):
    spec_dict["source"] = {"uri": "s3://vendor/orders/{ds}/", "format": "csv", "csv_delimiter": ";"}
    spec_dict["gate"] = {"criteria": {"min_metrics": {"roc_auc": 0.7}}}
    spec_dict["drift"] = {"schedule": "0 3 * * *", "policy": {"drift_share": 0.3}, "tests": {"method": "psi"}}
    spec_dict["retraining"] = {"cooldown_minutes": 60, "daily_cap": 4}
    spec_dict["materialization"] = {"schedule": "@hourly"}
    spec_dict["features"]["entity_keys"] = ["region_code"]
    return parse_spec(spec_dict, "include/models/refunds.yaml", REPO_ROOT)


@pytest.fixture
def dags(spec):
    from mlops_provider.spec.dags import build_dags

    return build_dags(spec)


def _chain(dag) -> list[str]:
    return [t.task_id for t in dag.topological_sort()]


def test_dag_ids_and_hygiene(dags):
    assert set(dags) == {"refunds__training", "refunds__materialization", "refunds__drift", "refunds__batch_scoring"}
    for dag in dags.values():
        assert dag.catchup is False and dag.max_active_runs == 1
        assert "mlops" in dag.tags and "refunds" in dag.tags
        assert dag.doc_md and "refunds" in dag.doc_md
        for task in dag.tasks:
            assert task.owner == "mlops" and task.retries >= 1


def test_training_chain_and_schedule(dags):
    dag = dags["refunds__training"]
    assert_chain(dag)
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny"
    assert {a.name for a in condition.objects} == {"validated.orders", "drift.refunds"}
    assert dag.params["window_days"] == 21


def test_training_operators_carry_the_specs_names(dags, spec):
    dag = dags["refunds__training"]
    ingest = dag.get_task("ingest")
    assert (ingest.dataset, ingest.source_uri, ingest.file_format, ingest.csv_delimiter) == (
        "orders",
        "s3://vendor/orders/{ds}/",
        "csv",
        ";",
    )
    assert ingest.derive == {"refunded": "refund_value > 0"}
    validate = dag.get_task("validate")
    assert validate.dataset == "orders" and validate.contract == spec.contract
    assert dag.get_task("materialize_features").feature_views == spec.feature_views
    training_set = dag.get_task("build_training_set")
    assert (
        training_set.dataset,
        training_set.feature_service,
        training_set.label_column,
        training_set.timestamp_column,
    ) == ("orders", "refunds_v1", "refunded", "ordered_at")
    assert training_set.entity_features == ["region_code"]
    assert [a.name for a in training_set.outlets] == ["training_set.orders"]
    train = dag.get_task("train")
    assert train.model_name == "refunds" and train.params_file == "include/trainer/params.yaml"
    gate = dag.get_task("evaluation_gate")
    assert gate.model_name == "refunds" and gate.criteria == {"min_metrics": {"roc_auc": 0.7}}
    deploy = dag.get_task("deploy")
    assert deploy.model_name == "refunds" and deploy.feature_service == "refunds_v1"
    assert deploy.prediction_range == (0.0, 1.0) and [a.name for a in deploy.outlets] == ["model.refunds"]
    assert deploy.manifest_options == spec.serving.manifest_options
    smoke = dag.get_task("smoke_test")
    assert smoke.model_name == "refunds" and smoke.prediction_range == (0.0, 1.0)
    cooldown = dag.get_task("retraining_cooldown")
    assert (cooldown.model_name, cooldown.cooldown_minutes, cooldown.daily_cap) == ("refunds", 60, 4)


def test_materialization_dag(dags, spec):
    dag = dags["refunds__materialization"]
    assert _chain(dag) == ["wait_for_source", "ingest", "validate", "apply_features", "materialize_features"]
    assert dag.schedule == "@hourly"
    sensor = dag.get_task("wait_for_source")
    assert sensor.dataset == "orders" and sensor.source_uri == "s3://vendor/orders/{ds}/"
    assert [a.name for a in dag.get_task("ingest").outlets] == ["raw.orders"]
    assert [a.name for a in dag.get_task("validate").outlets] == ["validated.orders"]
    materialize = dag.get_task("materialize_features")
    assert materialize.feature_views == spec.feature_views
    assert [a.name for a in materialize.outlets] == ["features.refunds"]


def test_drift_dag(dags):
    dag = dags["refunds__drift"]
    assert _chain(dag)[0] == "check_drift"
    check = dag.get_task("check_drift")
    assert (check.model_name, check.dataset) == ("refunds", "orders")
    assert check.policy == {"drift_share": 0.3} and check.drift_tests == {"method": "psi"}
    assert [a.name for a in dag.get_task("emit_drift_event").outlets] == ["drift.refunds"]
    assert dag.params["window_days"] == 3
    assert dag.schedule == "0 3 * * *"


def test_batch_scoring_dag(spec_dict):
    from mlops_provider.operators.batch_scoring import BatchScoringOperator
    from mlops_provider.spec.dags import build_dags

    spec_dict["batch_scoring"] = {"schedule": "0 2 * * *", "window_days": 2}
    dag = build_dags(parse_spec(spec_dict, "include/models/refunds.yaml", REPO_ROOT))["refunds__batch_scoring"]
    score = dag.get_task("score_batch")
    assert type(score) is BatchScoringOperator
    assert (score.model_name, score.dataset, score.feature_service) == ("refunds", "orders", "refunds_v1")
    assert score.timestamp_column == "ordered_at" and "params.window_days" in score.partition_start
    assert [a.name for a in score.outlets] == ["batch_scores.refunds"]
    assert dag.schedule == "0 2 * * *" and dag.params["window_days"] == 2


def test_serving_drift_and_batch_scoring_can_be_switched_off(spec_dict):
    from mlops_provider.spec.dags import build_dags

    spec_dict["serving"] = {"enabled": False}
    spec_dict["drift"] = {"enabled": False}
    spec_dict["batch_scoring"] = {"enabled": False}
    dags = build_dags(parse_spec(spec_dict, "include/models/refunds.yaml", REPO_ROOT))
    assert set(dags) == {"refunds__training", "refunds__materialization"}
    assert _chain(dags["refunds__training"])[-1] == "evaluation_gate"


def test_training_backend_from_the_spec(spec_dict):
    from mlops_provider.operators.training import training_operator_class
    from mlops_provider.spec.dags import build_dags

    spec_dict["training"] = {"backend": "vertex"}
    dag = build_dags(parse_spec(spec_dict, "include/models/refunds.yaml", REPO_ROOT))["refunds__training"]
    assert type(dag.get_task("train")) is training_operator_class("vertex")


def test_the_loader_dag_file_parses_with_a_dagbag(tmp_path):
    """``dags/model_specs.py`` in a DagBag: no import errors, the example's three DAGs, nothing heavy imported."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(REPO_ROOT / 'dags' / 'model_specs.py')!r})\n"
        "print(bag.import_errors)\n"
        "print(sorted(bag.dag_ids))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'feast', 'mlflow', 'pyarrow')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    errors, dag_ids, heavy = out.stdout.strip().splitlines()[-3:]
    assert errors == "{}"
    assert dag_ids == str(
        [
            "flight_delays__batch_scoring",
            "flight_delays__drift",
            "flight_delays__materialization",
            "flight_delays__training",
        ]
    )
    assert heavy == "[]"


def test_an_invalid_spec_is_the_loader_files_import_error(write_spec, spec_dict, tmp_path):
    import subprocess
    import sys

    spec_dict["features"]["aggregates"][1]["window"] = "7 days"
    path = write_spec(spec_dict)
    code = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(REPO_ROOT / 'dags' / 'model_specs.py')!r})\n"
        "print(list(bag.import_errors.values())[-1].strip().splitlines()[-1])\n"
    )
    env = {**__import__("os").environ, "AIRFLOW__MLOPS__MODEL_SPECS_FOLDER": str(path.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    assert "refunds.yaml: features.aggregates[1].window: expected a duration like 7d" in out.stdout, out.stderr[-2000:]


def test_autoscaling_from_the_spec_reaches_the_rendered_inference_service(spec_dict):
    """Scale to zero and a concurrency target are configuration: the spec's values end up on the predictor."""
    from mlops_provider.serving.manifests import render_inference_service
    from mlops_provider.spec.dags import build_dags

    serving = {**spec_dict.get("serving", {}), "autoscaling": {"min_replicas": 0, "max_replicas": 6,
                                                               "metric": "concurrency", "target": 4}}  # fmt: skip
    spec = parse_spec({**spec_dict, "serving": serving}, "include/models/refunds.yaml", REPO_ROOT)
    deploy = build_dags(spec)["refunds__training"].get_task("deploy")
    options = deploy.manifest_options
    # scale_to_zero_after (the local backend's idle window, Knative's 60 s + 30 s by default) comes with min 0 only.
    assert options == {"min_replicas": 0, "max_replicas": 6, "scale_metric": "concurrency", "scale_target": 4,
                       "scale_to_zero_after": 90.0, "serving_mode": "transformer"}  # fmt: skip
    kserve_options = {k: v for k, v in options.items() if k != "scale_to_zero_after"}  # as the operator passes them
    predictor = render_inference_service("refunds", "s3://b/m", feature_service="refunds_v1", **kserve_options)["spec"][
        "predictor"
    ]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 6)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 4)
    quick = {**serving, "autoscaling": {"min_replicas": 0, "scale_to_zero_after": 5}}
    spec = parse_spec({**spec_dict, "serving": quick}, "include/models/refunds.yaml", REPO_ROOT)
    assert spec.serving.manifest_options["scale_to_zero_after"] == 5.0
