"""The trainer package (``include/trainer``): params, snapshot paths, device plan."""

from __future__ import annotations

import pytest


def test_training_plan_uses_cuda_and_quantile_dmatrix_only_with_a_gpu():
    from include.trainer.fit import training_plan
    from include.trainer.params import DEFAULT_PARAMS, TrainingError

    gpu = training_plan(DEFAULT_PARAMS, gpu=True)
    assert gpu["device"] == "cuda" and gpu["matrix"] == "QuantileDMatrix"
    assert gpu["booster"]["tree_method"] == "hist" and gpu["booster"]["device"] == "cuda"
    cpu = training_plan(DEFAULT_PARAMS, gpu=False)
    assert cpu["device"] == "cpu" and cpu["matrix"] == "DMatrix"
    forced = {**DEFAULT_PARAMS, "xgboost": {**DEFAULT_PARAMS["xgboost"], "device": "cuda"}}
    with pytest.raises(TrainingError, match="no GPU is visible"):
        training_plan(forced, gpu=False)


def test_gpu_visible_honours_cuda_visible_devices():
    from include.trainer.fit import gpu_visible

    assert gpu_visible({"CUDA_VISIBLE_DEVICES": ""}) is False
    assert gpu_visible({"CUDA_VISIBLE_DEVICES": "-1"}) is False


def test_params_file_merges_over_defaults_and_rejects_unknown_keys(tmp_path, repo_root):
    from include.trainer.params import TrainingError, load_params

    params = load_params(repo_root / "include" / "trainer" / "params.yaml")
    assert params["xgboost"]["tree_method"] == "hist" and params["early_stopping_rounds"] > 0
    assert params["threshold"]["policy"] in ("max_f1", "fixed", "min_precision")
    custom = tmp_path / "p.yaml"
    custom.write_text("xgboost: {max_depth: 3}\nn_estimators: 20\n")
    merged = load_params(custom)
    assert merged["xgboost"]["max_depth"] == 3 and merged["xgboost"]["eta"] == 0.1 and merged["n_estimators"] == 20
    custom.write_text("n_estimator: 20\n")
    with pytest.raises(TrainingError, match="unknown keys"):
        load_params(custom)


def test_params_digest_check_refuses_another_file(tmp_path):
    import hashlib

    from include.trainer.params import TrainingError, check_params_digest

    params = tmp_path / "p.yaml"
    params.write_text("n_estimators: 20\n")
    check_params_digest(params, hashlib.sha256(params.read_bytes()).hexdigest())
    with pytest.raises(TrainingError, match="rebuild and push the trainer image"):
        check_params_digest(params, "0" * 64)


def test_snapshot_paths_accept_folder_or_file():
    from include.trainer.data import snapshot_paths

    assert snapshot_paths("s3://b/ts/abc/data.parquet") == ("s3://b/ts/abc/data.parquet", "s3://b/ts/abc/manifest.json")
    assert snapshot_paths("gs://b/ts/abc/") == ("gs://b/ts/abc/data.parquet", "gs://b/ts/abc/manifest.json")


def test_cli_is_the_lineage_entry_point_and_markers_come_from_the_contract():
    from include.trainer.__main__ import build_parser, marker_line
    from mlops_provider import lineage

    assert lineage.TRAINER_MODULE == "include.trainer"
    assert build_parser().prog == "python -m include.trainer"
    assert marker_line({"b": 1, "a": "x"}) == lineage.RESULT_MARKER + '{"a":"x","b":1}'
    assert lineage.last_marked_line(["noise", marker_line({"a": 1})], lineage.RESULT_MARKER) == '{"a":1}'
