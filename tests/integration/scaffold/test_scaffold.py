"""``make new-model`` on a data file with random column names: contract, spec, params, landing, bad input.

The file has a text entity key, a timestamp column, a numeric label expression's inputs, a low-cardinality
text column, numeric features, a constant column, an identifier and a leaked copy of the label; every column
name is random so nothing in the scaffold can lean on a name. Each run writes into a temporary project folder
(``--project-root``) and landing zone (``--data-root``), never into the repository.
"""

from __future__ import annotations

import random
import string
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from include.scaffold import ScaffoldError, main, scaffold
from mlops_provider.spec.load import load_spec

pytestmark = pytest.mark.integration

DAYS = 8
ROWS = 1600
FIRST = date(2026, 3, 1)


def _names(seed: int) -> dict[str, str]:
    rnd = random.Random(seed)
    roles = ("entity", "timestamp", "amount", "score", "count", "tier", "constant", "row_id", "leak", "flag")
    used: set[str] = set()
    names = {}
    for role in roles:
        name = ""
        while not name or name in used:
            name = rnd.choice(string.ascii_lowercase) + "".join(rnd.choices(string.ascii_lowercase + "_", k=7))
        used.add(name)
        names[role] = name
    return names


def _frame(names: dict[str, str], rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(FIRST.isoformat(), tz="UTC")
    when = start + pd.to_timedelta(rng.integers(0, DAYS * 86400, rows), unit="s")
    amount = rng.gamma(2.0, 40.0, rows).round(2)
    frame = pd.DataFrame(
        {
            names["entity"]: rng.choice([f"k{i:03d}" for i in range(60)], rows),
            names["timestamp"]: when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            names["amount"]: amount,
            names["score"]: rng.normal(0.0, 1.0, rows).round(4),
            names["count"]: rng.integers(1, 9, rows),
            names["tier"]: rng.choice(["red", "green", "blue", "grey"], rows),
            names["constant"]: 7,
            names["row_id"]: [f"id-{i:06d}" for i in range(rows)],
            names["flag"]: rng.random(rows) < 0.3,
        }
    )
    frame[names["leak"]] = (frame[names["amount"]] * 2 > 150).astype("int64")
    return frame


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.fixture
def names() -> dict[str, str]:
    return _names(random.SystemRandom().randrange(10**6))


def _run(tmp_path: Path, data: Path, names: dict[str, str], **kwargs):
    args = {
        "label": f"{names['amount']} * 2 > 150",
        "timestamp": names["timestamp"],
        "entities": [names["entity"]],
        "name": "scaffolded",
        "project_root": tmp_path / "project",
        "data_root": (tmp_path / "data").as_uri(),
    }
    return scaffold(data, **{**args, **kwargs})


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_scaffold_writes_contract_spec_params_and_day_partitions(tmp_path, names, suffix, capsys):
    data = _write(_frame(names), tmp_path / f"input{suffix}")
    plan, files, landed = _run(tmp_path, data, names)
    project = tmp_path / "project"
    assert files == {
        "spec": project / "include/models/scaffolded.yaml",
        "contract": project / "include/contracts/scaffolded.yaml",
        "params": project / "include/models/params/scaffolded.yaml",
    }
    contract = yaml.safe_load(files["contract"].read_text())
    columns = contract["columns"]
    assert contract["dataset"] == "scaffolded" and contract["timestamp_column"] == names["timestamp"]
    assert columns[names["timestamp"]] == {
        "type": "timestamp",
        "nullable": False,
        "within_partition": True,
        "tolerance": "1h",
    }
    assert columns[names["entity"]] == {"type": "string", "nullable": False}  # no allowed list for a key
    assert columns[names["tier"]]["allowed"] == ["blue", "green", "grey", "red"]
    assert columns[names["row_id"]] == {"type": "string", "nullable": False, "unique": True}
    assert columns[names["flag"]]["type"] == "int64"  # booleans land as 0/1
    count = columns[names["count"]]
    assert count["type"] == "int64" and count["min"] == 0 and count["max"] == 12  # 1..8 widened by 3.5, outwards
    amount = columns[names["amount"]]
    assert amount["min"] == 0.0 and amount["max"] > plan.frame[names["amount"]].max()
    assert columns["label"] == {"type": "int64", "nullable": False, "allowed": [0, 1]}

    spec = yaml.safe_load(files["spec"].read_text())
    assert spec["task"] == "binary" and spec["label"] == "label"
    assert spec["derive"] == {"label": f"{names['amount']} * 2 > 150"}
    assert spec["entities"] == {names["entity"]: "string"}
    assert spec["timestamp_column"] == names["timestamp"]
    assert spec["source"] == {"format": suffix.lstrip(".")}
    features = spec["features"]
    assert sorted(features["request"]) == sorted([names["score"], names["count"], names["flag"]])
    assert features["categoricals"] == [names["tier"]]
    assert contract["columns"][names["tier"]]["allowed"] == ["blue", "green", "grey", "red"]
    assert features["aggregates"] == [{"entity": names["entity"], "functions": ["count"], "windows": ["1d", "7d"]}]
    assert spec["gate"]["criteria"]["min_metrics"] == {"roc_auc": 0.6}
    assert spec["training"]["window_days"] == DAYS and spec["retraining"]["cooldown_minutes"] == 360
    assert spec["drift"]["schedule"] == "0 */6 * * *"
    assert yaml.safe_load(files["params"].read_text())["task"] == "binary"
    notes = "\n".join(plan.notes)
    assert f"{names['amount']}: not a feature, the label is computed from it" in notes
    assert f"{names['constant']}: not a feature, it is constant (7)" in notes
    assert f"{names['leak']}: not a feature, it equals the label in every row" in notes
    assert f"{names['row_id']}: not a feature, one value per row" in notes

    loaded = load_spec(files["spec"], project)
    assert loaded.task == "binary" and loaded.derive == {"label": f"{names['amount']} * 2 > 150"}

    # One partition per UTC day, the rows of that day only, without the derived label (ingestion computes it).
    assert [u.rsplit("/landing/", 1)[1] for u in landed] == [
        f"scaffolded/dt={day:%Y-%m-%d}/part-0{suffix}" for day in pd.date_range(FIRST, periods=DAYS).date
    ]
    total = 0
    for uri in landed:
        path = Path(uri.removeprefix("file://"))
        day = path.parent.name.removeprefix("dt=")
        if suffix == ".csv":
            rows = pd.read_csv(path)
        elif suffix == ".jsonl":
            rows = pd.read_json(path, lines=True, convert_dates=False)
        else:
            rows = pd.read_parquet(path)
        assert "label" not in rows.columns
        assert (pd.to_datetime(rows[names["timestamp"]], utc=True).dt.strftime("%Y-%m-%d") == day).all()
        total += len(rows)
    assert total == ROWS


def test_label_lag_adds_the_label_mean_and_a_regression_gets_its_range(tmp_path, names):
    frame = _frame(names)
    frame[names["leak"]] = frame[names["amount"]] * 0.01 + 3  # in another unit: perfectly correlated
    data = _write(frame, tmp_path / "input.parquet")
    plan, files, _ = _run(tmp_path, data, names, label=names["amount"], label_lag="6h")
    assert any(n.startswith(f"{names['leak']}: not a feature, it is perfectly correlated") for n in plan.notes)
    spec = yaml.safe_load(files["spec"].read_text())
    assert spec["task"] == "regression" and "derive" not in spec
    assert spec["features"]["aggregates"][-1] == {
        "entity": names["entity"],
        "column": names["amount"],
        "functions": ["mean"],
        "windows": ["7d"],
        "label_lag": "6h",
    }
    low, high = spec["serving"]["prediction_range"]
    assert low == 0.0 and high > plan.frame[names["amount"]].max()
    assert spec["gate"]["criteria"]["min_metrics"] == {"r2": 0.0}
    assert load_spec(files["spec"], tmp_path / "project").task == "regression"


def test_multiclass_from_a_text_label(tmp_path, names):
    data = _write(_frame(names), tmp_path / "input.csv")
    _, files, _ = _run(tmp_path, data, names, label=names["tier"])
    spec = yaml.safe_load(files["spec"].read_text())
    assert spec["task"] == "multiclass" and "categoricals" not in spec["features"]
    assert spec["serving"]["prediction_range"] == [0, 3]
    assert load_spec(files["spec"], tmp_path / "project").task == "multiclass"


def _problems(tmp_path, data, names, **kwargs) -> str:
    with pytest.raises(ScaffoldError) as err:
        _run(tmp_path, data, names, **kwargs)
    assert not any((tmp_path / "project").rglob("*.yaml")), "nothing may be written on an error"
    assert not (tmp_path / "data").exists(), "nothing may land on an error"
    return str(err.value)


def test_bad_input_is_refused_with_actionable_messages(tmp_path, names):
    frame = _frame(names)
    data = _write(frame, tmp_path / "input.csv")
    message = _problems(tmp_path, data, names, timestamp="when", entities=["who"])
    assert "TIMESTAMP 'when' is not a column of input.csv; columns: " in message
    assert "ENTITY 'who' is not a column" in message and names["amount"] in message
    message = _problems(tmp_path, data, names, label="nope > 1")
    assert "LABEL 'nope > 1' reads ['nope'], which the file does not have; columns: " in message
    message = _problems(tmp_path, data, names, label=names["constant"])
    assert "has a single value (7) in every row" in message
    message = _problems(tmp_path, data, names, label=f"{names['amount']} > 10000")
    assert "single value (0)" in message

    broken = frame.copy()
    broken.loc[[3, 9], names["timestamp"]] = ["not a time", "2026-13-45"]
    broken.loc[[5], names["timestamp"]] = None
    message = _problems(tmp_path, _write(broken, tmp_path / "broken.csv"), names)
    assert "is missing in 1 of 1600 rows (first rows: [5])" in message
    assert "cannot be parsed in 2 of 1600 rows, e.g. ['not a time', '2026-13-45']" in message

    rare = frame.copy()
    rare[names["amount"]] = 1.0
    rare.loc[:9, names["amount"]] = 100.0
    message = _problems(tmp_path, _write(rare, tmp_path / "rare.csv"), names)
    assert "class 1 has 10 rows; at least 20 per class" in message


def test_an_existing_spec_is_kept_unless_forced(tmp_path, names, capsys):
    data = _write(_frame(names), tmp_path / "input.csv")
    _run(tmp_path, data, names)
    with pytest.raises(ScaffoldError, match=r"scaffolded.yaml exists; pick another NAME or pass FORCE=1"):
        _run(tmp_path, data, names)
    _run(tmp_path, data, names, force=True)
    # The command line: exit 2, one message per problem, nothing written.
    code = main(
        [
            "--data",
            str(data),
            "--label",
            "missing_col",
            "--timestamp",
            names["timestamp"],
            "--entity",
            names["entity"],
            "--name",
            "other",
            "--project-root",
            str(tmp_path / "project"),
            "--data-root",
            (tmp_path / "data2").as_uri(),
        ]
    )
    assert code == 2
    assert "nothing was written" in capsys.readouterr().err
    assert not (tmp_path / "project/include/models/other.yaml").exists()


def test_a_dataset_of_another_spec_is_refused(tmp_path, names):
    models = tmp_path / "project" / "include" / "models"
    models.mkdir(parents=True)
    (models / "other_model.yaml").write_text("name: other_model\ndataset: scaffolded\n")
    data = _write(_frame(names), tmp_path / "input.csv")
    with pytest.raises(ScaffoldError, match=r"other_model.yaml already uses dataset 'scaffolded'; pick another NAME"):
        _run(tmp_path, data, names)
    assert not (tmp_path / "data").exists()
