"""The params file's ``search:`` block: defaults, and errors that name the file, the key and the fix."""

from __future__ import annotations

import pytest

SPACE = {"max_depth": {"int": [3, 8]}, "eta": {"float": [0.02, 0.3], "log": True}, "grow_policy": {"choice": ["a"]}}


def write(tmp_path, params: dict) -> str:
    import yaml

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return str(path)


def test_no_search_block_means_no_search_and_defaults_follow_the_task(tmp_path):
    from include.trainer.params import load_params, search_config

    assert search_config(load_params(write(tmp_path, {"n_estimators": 10}))) is None
    path = write(tmp_path, {"task": "regression", "search": {"trials": 3, "space": SPACE}})
    config = search_config(load_params(path), path)
    assert config is not None
    assert (config.metric, config.direction, config.trials, config.timeout_minutes) == ("r2", "maximize", 3, None)
    assert (config.parallelism, config.seed, config.pruning, config.startup_trials, config.warmup_rounds) == (
        1, 0, True, 5, 10,
    )  # fmt: skip
    assert [(s.name, s.kind, s.low, s.high, s.log) for s in config.space[:2]] == [
        ("max_depth", "int", 3, 8, False), ("eta", "float", 0.02, 0.3, True),
    ]  # fmt: skip
    assert config.space[2].choices == ("a",)
    path = write(tmp_path, {"search": {"timeout_minutes": 2, "metric": "log_loss", "pruning": False, "space": SPACE}})
    config = search_config(load_params(path), path)
    assert config is not None and config.direction == "minimize" and config.pruning is False


def test_the_default_search_metric_is_the_gates_floor_metric_of_each_task():
    from include.trainer.params import DEFAULT_SEARCH_METRICS
    from mlops_provider.lineage import TASKS
    from mlops_provider.operators.mlflow import DEFAULT_CRITERIA_BY_TASK

    assert set(DEFAULT_SEARCH_METRICS) == set(TASKS)
    for task, metric in DEFAULT_SEARCH_METRICS.items():
        assert metric in DEFAULT_CRITERIA_BY_TASK[task]["min_metrics"]


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"space": SPACE}, r"search: set a budget, trials and/or timeout_minutes"),
        ({"trials": 0, "space": SPACE}, r"search.trials: expected a whole number >= 1"),
        ({"trials": 2, "budget": 1, "space": SPACE}, r"search has unknown keys \['budget'\]"),
        ({"trials": 2}, r"search.space: expected a mapping of XGBoost parameters"),
        ({"trials": 2, "space": {"seed": {"int": [1, 3]}}}, r"search.space.seed: 'seed' cannot be searched"),
        ({"trials": 2, "space": {"eta": {"float": [0.3, 0.1]}}}, r"search.space.eta.float: expected \[low, high\]"),
        ({"trials": 2, "space": {"eta": {"float": [0, 1], "log": True}}}, r"log scale needs low > 0"),
        ({"trials": 2, "space": {"max_depth": {"int": [3, 8], "float": [1, 2]}}}, r"exactly one of int, float"),
        ({"trials": 2, "space": {"max_depth": {"int": [3.5, 8]}}}, r"search.space.max_depth.int: expected whole"),
        ({"trials": 2, "metric": "r2", "space": SPACE}, r"search.metric: 'r2' is not a binary metric"),
        ({"trials": 2, "parallelism": -1, "space": SPACE}, r"search.parallelism: expected a whole number >= 1"),
        ({"trials": 2, "pruning": {"patience": 3}, "space": SPACE}, r"search.pruning has unknown keys"),
    ],
)
def test_bad_search_blocks_are_refused_naming_the_file_and_key(tmp_path, search, message):
    from include.trainer.params import TrainingError, load_params

    path = write(tmp_path, {"search": search})
    with pytest.raises(TrainingError, match=message) as raised:
        load_params(path)
    assert str(raised.value).startswith(f"{path}: search")


@pytest.mark.parametrize(
    ("eval_metric", "study_maximizes", "reported"),
    [("aucpr", True, 0.8), ("logloss", True, -0.8), ("ndcg@5", False, -0.8), ("error@0.7", False, 0.8)],
)
def test_the_pruning_callback_reports_the_curve_in_the_studys_direction(eval_metric, study_maximizes, reported):
    import optuna

    from include.trainer.search import PruningCallback

    class Trial:
        def __init__(self, prune: bool) -> None:
            self.prune, self.reports = prune, []

        def report(self, value: float, step: int) -> None:
            self.reports.append((value, step))

        def should_prune(self) -> bool:
            return self.prune

    keep = Trial(prune=False)
    assert (
        PruningCallback(keep, eval_metric, study_maximizes).after_iteration(
            None, 3, {"validation": {eval_metric: [0.8]}}
        )
        is False
    )
    assert keep.reports == [(reported, 3)]
    with pytest.raises(optuna.TrialPruned, match="round 4"):
        PruningCallback(Trial(prune=True), eval_metric, study_maximizes).after_iteration(
            None, 4, {"validation": {eval_metric: [0.8]}}
        )
