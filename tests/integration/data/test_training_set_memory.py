"""Peak memory of building a training set stays bounded as the labels grow.

The point-in-time join (:class:`~mlops_provider.features.offline_store.AsOfRetrievalJob`, DuckDB) and the
snapshot writer (:func:`~mlops_provider.operators.feast.write_training_set`) stream: DuckDB holds at most its
``memory_limit`` and spills the rest, Python holds one batch at a time. Each size runs in a fresh interpreter so
its peak RSS (``VmHWM``) is its own; the input files are written by the test process beforehand.
The assertion is on memory only, so a loaded machine makes the test slower, never flaky.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SMALL = 50_000
LARGE = 4 * SMALL
DAYS = 5
#: DuckDB's limit for the join and the sort (it spills beyond): what bounds the build's memory.
MEMORY_LIMIT = "48MB"


def _write_inputs(folder: Path, labels: int) -> None:
    """``labels`` label rows over ``DAYS`` daily files and two feature rows per label (before it, per entity)."""
    rng = np.random.default_rng(labels)
    entities = labels // 10
    day_us = 86_400 * 1_000_000
    start_us = 1_780_000_000 * 1_000_000
    (folder / "labels").mkdir(parents=True)
    (folder / "features").mkdir()
    per_day = labels // DAYS
    for day in range(DAYS):
        ts = np.sort(start_us + day * day_us + rng.integers(0, day_us, per_day))
        entity = rng.integers(1, entities + 1, per_day)
        pq.write_table(
            pa.table(
                {
                    "entity_id": pa.array(entity, pa.int64()),
                    "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                    "label": pa.array(rng.integers(0, 2, per_day), pa.int64()),
                }
            ),
            folder / "labels" / f"{day}.parquet",
        )
        # Feature rows at distinct instants per entity (change points are unique per entity and instant).
        feature_ts = np.concatenate([ts - 1, ts - 7])
        pq.write_table(
            pa.table(
                {
                    "entity_id": pa.array(np.concatenate([entity, entity]), pa.int64()),
                    "event_timestamp": pa.array(feature_ts, pa.timestamp("us", tz="UTC")),
                    "txn_count": pa.array(rng.integers(0, 50, 2 * per_day), pa.int64()),
                    "amount_mean": pa.array(rng.random(2 * per_day) * 100),
                }
            ),
            folder / "features" / f"{day}.parquet",
        )


def _peak_rss_kib() -> int:
    """This process's peak RSS since its exec (``VmHWM``): ``ru_maxrss`` would carry the parent's peak over exec, and
    a pytest-xdist worker's is larger than anything measured here."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line")


def measure(folder: str) -> None:
    """Build the training set of the inputs in ``folder`` and print the rows and peak RSS (runs in a child)."""

    from feast import FileSource
    from feast.repo_config import RepoConfig

    from mlops_provider.features.offline_store import STORE_TYPE, AsOfRetrievalJob, _ViewJoin
    from mlops_provider.operators.feast import write_training_set

    config = RepoConfig(
        project="memory_probe",
        provider="local",
        registry=f"{folder}/registry.db",
        online_store={"type": "sqlite", "path": f"{folder}/online.db"},
        offline_store={"type": STORE_TYPE, "memory_limit": MEMORY_LIMIT, "batch_rows": 16_384, "threads": 1},
        repo_path=folder,
        entity_key_serialization_version=3,
    )
    source = FileSource(name="entity_stats_source", path=f"{folder}/features", timestamp_field="event_timestamp")
    features = ["txn_count", "amount_mean"]
    view = _ViewJoin("entity_stats", source, ["entity_id"], ["entity_id"], features, None)
    imported_kib = _peak_rss_kib()
    job = AsOfRetrievalJob(
        config=config,
        entity=f"SELECT entity_id, label, event_timestamp FROM read_parquet('{folder}/labels/*.parquet')",
        views=[view],
        full_feature_names=False,
        on_demand_feature_views=[],
        feature_refs=[f"entity_stats:{f}" for f in features],
    )
    work = Path(folder) / "work"
    work.mkdir()
    snapshot = write_training_set(
        job.iter_batches(),
        entity_columns=["entity_id"],
        timestamp_column="event_timestamp",
        feature_columns=features,
        label_column="label",
        work=str(work),
        config=config,
    )
    joined = pq.read_table(snapshot.path, columns=["txn_count"]).column("txn_count")
    print(
        json.dumps(
            {
                "rows": snapshot.rows,
                "with_features": len(joined) - joined.null_count,
                "imported_mib": imported_kib / 1024,
                "peak_mib": _peak_rss_kib() / 1024,
            }
        )
    )


def _start(tmp_path: Path, labels: int) -> subprocess.Popen:
    folder = tmp_path / f"n{labels}"
    _write_inputs(folder, labels)
    code = f"from tests.integration.data.test_training_set_memory import measure; measure({str(folder)!r})"
    pythonpath = f"{ROOT / 'providers' / 'mlops' / 'src'}:{ROOT}"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(child: subprocess.Popen) -> dict:
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_training_set_peak_memory_grows_far_slower_than_rows(tmp_path):
    # Both sizes at once (separate processes, so separate peaks): most of each run is importing Feast.
    children = [_start(tmp_path, SMALL), _start(tmp_path, LARGE)]
    small, large = (_result(child) for child in children)
    for result, labels in ((small, SMALL), (large, LARGE)):
        assert result["rows"] == labels // DAYS * DAYS
        assert result["with_features"] == result["rows"]  # every label found its feature row
    small_work = small["peak_mib"] - small["imported_mib"]
    large_work = large["peak_mib"] - large["imported_mib"]
    # Proportional memory would make the large build's working memory 4x the small one's; streaming keeps it
    # within the join's limit plus a few batches.
    assert large_work < 2 * small_work, (small, large)
    assert large["peak_mib"] - small["peak_mib"] < 150, (small, large)
