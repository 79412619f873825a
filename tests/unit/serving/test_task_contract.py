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
    assert tuple(constants["TASKS"]) == lineage.TASKS
