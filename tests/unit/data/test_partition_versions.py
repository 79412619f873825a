"""Versioned partitions: content-addressed immutable versions, the CURRENT pointer, retention, racing writers."""

from __future__ import annotations

import datetime as dt
import io
import threading

import pandas as pd
import pytest

from mlops_provider.exceptions import PartitionVersionMissingError
from mlops_provider.partitions import (
    clear_current,
    content_version,
    current_version,
    list_versions,
    parse_partition_key,
    partition_key,
    prune_versions,
    read_partition,
    read_window,
    version_uri,
    write_partition,
)
from mlops_provider.storage import parquet_bytes, read_parquet

DAY = dt.date(2031, 3, 1)


def _parquet(rows: int, offset: int = 0) -> bytes:
    return parquet_bytes(pd.DataFrame({"id": range(offset, offset + rows), "x": [0.5] * rows}))


@pytest.fixture
def zone(tmp_path) -> str:
    return (tmp_path / "validated" / "events").as_uri()


def _version_ids(zone: str) -> set[str]:
    return {v["version"] for v in list_versions(zone, DAY)}


def test_same_content_is_the_same_version_and_no_new_copy(zone, tmp_path):
    data = _parquet(10)
    first = write_partition(data, zone, DAY, retain=5)
    current = tmp_path / "validated" / "events" / "dt=2031-03-01" / "data.parquet"
    stamp = current.stat().st_mtime_ns
    assert write_partition(data, zone, DAY, retain=5) == first == content_version(data)
    assert current.stat().st_mtime_ns == stamp, "an unchanged rewrite copies nothing"
    assert _version_ids(zone) == {first} and current_version(zone, DAY) == first
    assert current.read_bytes() == data
    assert sorted(p.name for p in current.parent.iterdir()) == ["_versions", "data.parquet"]


def test_new_content_is_a_new_version_and_moves_the_pointer(zone):
    old, new = _parquet(10), _parquet(12, offset=100)
    first = write_partition(old, zone, DAY, retain=5)
    second = write_partition(new, zone, DAY, retain=5)
    assert first != second and current_version(zone, DAY) == second
    assert read_partition(zone, DAY) == (new, second), "readers see the new content"
    assert read_partition(zone, DAY, version=first) == (old, first), "the old version stays readable"
    assert [v["version"] for v in list_versions(zone, DAY)] == [second, first], "newest first"
    # Going back to earlier content reuses its version (no third copy) and the pointer follows.
    assert write_partition(old, zone, DAY, retain=5) == first
    assert current_version(zone, DAY) == first and _version_ids(zone) == {first, second}


def test_readers_of_the_current_files_never_see_versions(zone):
    write_partition(_parquet(10), zone, DAY, retain=5)
    write_partition(_parquet(7, offset=50), zone, DAY, retain=5)
    assert len(read_parquet(f"{zone}/dt={DAY}")) == 7, "a folder read skips _versions"
    assert len(read_window(zone, DAY, DAY).frame) == 7
    import pyarrow.dataset as pads

    assert pads.dataset(zone.removeprefix("file://"), format="parquet").count_rows() == 7


def test_retention_keeps_the_newest_and_never_the_current_one(zone):
    a, b, c = _parquet(1), _parquet(2), _parquet(3)
    va = write_partition(a, zone, DAY, retain=2)
    vb = write_partition(b, zone, DAY, retain=2)
    assert write_partition(a, zone, DAY, retain=2) == va  # current again, but the oldest version
    assert prune_versions(zone, DAY, keep=1) == [], "the current version survives however old"
    assert _version_ids(zone) == {va, vb}
    vc = write_partition(c, zone, DAY, retain=1)
    assert _version_ids(zone) == {vc} and current_version(zone, DAY) == vc
    with pytest.raises(PartitionVersionMissingError) as err:
        read_partition(zone, DAY, version=vb, key=partition_key("validated", "events", DAY))
    message = str(err.value)
    assert "validated/events/dt=2031-03-01" in message and vb in message
    assert "partition_versions_retained" in message


def test_retention_setting_is_read_from_the_config(zone, monkeypatch):
    from mlops_provider.settings import get_settings

    monkeypatch.setenv("AIRFLOW__MLOPS__PARTITION_VERSIONS_RETAINED", "2")
    assert get_settings().partition_versions_retained == 2
    for n in range(4):
        write_partition(_parquet(n + 1), zone, DAY)
    assert len(list_versions(zone, DAY)) == 2


def test_concurrent_writers_of_the_same_content_publish_one_version(zone, tmp_path):
    data = _parquet(500)
    barrier = threading.Barrier(8)
    versions: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            barrier.wait()
            versions.append(write_partition(data, zone, DAY, retain=5))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and set(versions) == {content_version(data)}
    assert _version_ids(zone) == set(versions) and current_version(zone, DAY) == versions[0]
    assert read_partition(zone, DAY) == (data, versions[0])
    leftovers = [p for p in (tmp_path / "validated").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [], "every temporary file was renamed into place"


def test_clearing_the_current_content_keeps_its_versions(zone):
    version = write_partition(_parquet(4), zone, DAY, retain=5)
    assert clear_current(zone, DAY) is True
    assert read_partition(zone, DAY) is None and current_version(zone, DAY) is None
    assert read_partition(zone, DAY, version=version)[1] == version


def test_a_partition_written_before_versioning_gets_its_version_when_read(zone, tmp_path):
    legacy = _parquet(3)
    folder = tmp_path / "validated" / "events" / "dt=2031-03-01"
    folder.mkdir(parents=True)
    (folder / "data.parquet").write_bytes(legacy)
    data, version = read_partition(zone, DAY)
    assert data == legacy and version == content_version(legacy)
    assert pd.read_parquet(io.BytesIO(read_partition(zone, DAY, version=version)[0])).shape == (3, 2)
    assert version_uri(zone, DAY, version).endswith(f"dt=2031-03-01/_versions/{version}/data.parquet")


def test_partition_keys_round_trip():
    assert partition_key("validated", "events", DAY) == "validated/events/dt=2031-03-01"
    assert parse_partition_key("validated/events/dt=2031-03-01") == ("validated", "events", DAY)


def test_a_write_that_died_before_its_pointer_is_repaired_by_the_retry(zone, tmp_path):
    old, new = _parquet(5), _parquet(6, offset=9)
    version = write_partition(old, zone, DAY, retain=5)
    current = tmp_path / "validated" / "events" / "dt=2031-03-01" / "data.parquet"
    current.write_bytes(new)  # a second write replaced the file and was killed before moving the pointer
    assert write_partition(old, zone, DAY, retain=5) == version
    assert current.read_bytes() == old and current_version(zone, DAY) == version
