"""The model server (which cannot import the provider) reads the task attributes the trainer writes."""

from __future__ import annotations

import ast
from pathlib import Path

from mlops_provider import lineage

PREDICTOR = Path(__file__).resolve().parents[3] / "kserve" / "mlops_serving" / "predictor.py"


def test_the_predictor_uses_the_lineage_attribute_names_and_tasks():
    constants = {}
    for node in ast.parse(PREDICTOR.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    assert constants["BOOSTER_TASK_ATTR"] == lineage.BOOSTER_TASK_ATTR
    assert constants["BOOSTER_CLASSES_ATTR"] == lineage.BOOSTER_CLASSES_ATTR
    assert constants["BOOSTER_CATEGORIES_ATTR"] == lineage.BOOSTER_CATEGORIES_ATTR
    assert tuple(constants["TASKS"]) == lineage.TASKS


def test_the_deploy_analysis_range_follows_the_candidate_task():
    from types import SimpleNamespace

    from mlops_provider.operators.kserve import ModelDeployOperator

    def deploy(tags, **kwargs):
        operator = ModelDeployOperator(
            task_id="deploy", model_name="m", candidate={"model_version": "3", "artifact_uri": "file:///m/3"}, **kwargs
        )
        registry = SimpleNamespace(get_model_version=lambda name, version: SimpleNamespace(tags=tags, run_id=None))
        operator.__dict__["mlflow_hook"] = registry
        return operator

    assert deploy({})._analysis_config().prediction_range == (0.0, 1.0)  # binary, as before
    assert deploy({"mlops.task": "multiclass"})._analysis_config().prediction_range == (0.0, 1.0)
    regression = deploy({"mlops.task": "regression"})._analysis_config().prediction_range
    assert regression == (float("-inf"), float("inf"))
    assert deploy({"mlops.task": "regression"}, prediction_range=(0, 50))._analysis_config().prediction_range == (0, 50)
