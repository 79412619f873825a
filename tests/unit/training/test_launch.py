"""Launch arguments and the idempotency key (``mlops_provider.training.launch``), as the operators build them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def _context(try_number: int, map_index: int | None = None) -> dict:
    ti = SimpleNamespace(dag_id="dag", task_id="train", map_index=map_index, try_number=try_number)
    return {"ti": ti, "run_id": "manual__2026-01-01"}


@pytest.fixture
def params_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("n_estimators: 20\n")
    return path


def _local(params_file, manifest_hash: str = "abc123"):
    from mlops_provider.operators.training_local import XGBoostTrainLocalOperator

    return XGBoostTrainLocalOperator(
        task_id="train",
        model_name="m",
        training_set={"uri": "s3://b/ts/abc123/data.parquet", "hash": manifest_hash},
        params_file=str(params_file),
    )


def test_idempotency_key_is_the_same_on_every_try_of_one_attempt(params_file):
    first = _local(params_file).trainer_launch(_context(try_number=1))
    retry = _local(params_file).trainer_launch(_context(try_number=2))
    assert first.idempotency_key == retry.idempotency_key
    assert first.idempotency_key.startswith("dag/manual__2026-01-01/train/-1/")
    # The try number is still recorded as lineage, just not in the key.
    assert first.arguments("/out.json", check_params=False)[-4:-2] == ["--try-number", "1"]
    assert retry.arguments("/out.json", check_params=False)[-4:-2] == ["--try-number", "2"]
    assert "/2" not in retry.idempotency_key.removeprefix("dag/manual__2026-01-01/train/-1/")


def test_idempotency_key_changes_with_data_params_code_and_map_index(params_file):
    base = _local(params_file).trainer_launch(_context(1)).idempotency_key
    new_data = _local(params_file, manifest_hash="def456").trainer_launch(_context(1)).idempotency_key
    mapped = _local(params_file).trainer_launch(_context(1, map_index=3)).idempotency_key
    operator = _local(params_file)
    operator.code_version = "ghcr.io/example/trainer:2"
    new_code = operator.trainer_launch(_context(1)).idempotency_key
    params_file.write_text("n_estimators: 30\n")
    new_params = _local(params_file).trainer_launch(_context(1)).idempotency_key
    keys = {base, new_data, mapped, new_code, new_params}
    assert len(keys) == 5, keys
    assert mapped.startswith("dag/manual__2026-01-01/train/3/")


def test_idempotency_key_is_built_from_exactly_its_inputs():
    from mlops_provider.training.launch import idempotency_key

    inputs = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "training_set_hash": "h",
              "params_hash": "p", "code_version": "c"}  # fmt: skip
    key = idempotency_key(**inputs)
    assert key == idempotency_key(**inputs) and key.startswith("d/r/t/-1/") and len(key.rsplit("/", 1)[1]) == 16
    for name in ("training_set_hash", "params_hash", "code_version"):
        assert idempotency_key(**{**inputs, name: "other"}) != key, name


def test_trainer_arguments_are_one_command_line_for_every_backend():
    from mlops_provider.training.launch import AirflowIds, argument_value, trainer_arguments

    ids = AirflowIds(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=2)
    args = trainer_arguments(
        training_set_uri="s3://b/ts", params_file="p.yaml", model_name="m", output_json="/o.json",
        run_name="run", idempotency_key="d/r/t/-1/x", airflow_ids=ids, params_sha256="ab",
    )  # fmt: skip
    assert args == [
        "--training-set-uri", "s3://b/ts", "--params-file", "p.yaml", "--model-name", "m", "--output-json", "/o.json",
        "--run-name", "run", "--idempotency-key", "d/r/t/-1/x", "--expect-params-sha256", "ab", "--dag-id", "d",
        "--dag-run-id", "r", "--task-id", "t", "--try-number", "2", "--map-index", "-1",
    ]  # fmt: skip
    assert argument_value(args, "--idempotency-key") == "d/r/t/-1/x" and argument_value(args, "--nope") is None
    from include.trainer.__main__ import build_parser

    parsed = build_parser().parse_args(args)
    assert parsed.idempotency_key == "d/r/t/-1/x" and parsed.map_index == -1 and parsed.try_number == "2"


def test_trainer_default_key_matches_the_operators_recipe(tmp_path):
    """A trainer started without --idempotency-key inside Airflow builds the same kind of key, without the try."""
    from include.trainer.__main__ import build_parser
    from include.trainer.tracking import lineage_tags
    from mlops_provider.lineage import IDEMPOTENCY_TAG

    params = tmp_path / "p.yaml"
    params.write_text("n_estimators: 20\n")
    argv = ["--training-set-uri", "s3://b/ts", "--params-file", str(params), "--model-name", "m", "--output-json",
            "/o.json", "--dag-id", "d", "--dag-run-id", "r", "--task-id", "t", "--git-commit", "abc"]  # fmt: skip
    manifest = {"uri": "s3://b/ts", "hash": "h1"}
    first = lineage_tags(build_parser().parse_args([*argv, "--try-number", "1"]), manifest, {})
    second = lineage_tags(build_parser().parse_args([*argv, "--try-number", "2"]), manifest, {})
    assert first[IDEMPOTENCY_TAG] == second[IDEMPOTENCY_TAG] and first[IDEMPOTENCY_TAG].startswith("d/r/t/-1/")
    other = lineage_tags(build_parser().parse_args(argv), {**manifest, "hash": "h2"}, {})
    assert other[IDEMPOTENCY_TAG] != first[IDEMPOTENCY_TAG]
    outside = lineage_tags(build_parser().parse_args(argv[:8]), manifest, {})
    assert outside[IDEMPOTENCY_TAG].startswith("adhoc/")
