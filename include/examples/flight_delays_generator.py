"""Deterministic generator of flight departures for the second example model (``include/models/flight_delays.yaml``).

Writes one partition per UTC day (by scheduled departure) to
``<root>/landing/departures/dt=YYYY-MM-DD/part-0.jsonl`` (or ``.csv``/``.parquet``) with the columns of the
``departures`` contract (``include/contracts/departures.yaml``)::

    flight_id, carrier_code, origin_airport, dest_airport, scheduled_departure, aircraft_type,
    distance_km, seats, scheduled_hour, weather_severity, gate_delay_seconds

and the per-airport static table to ``<root>/static/airports/airports.parquet``
(``origin_airport, runway_count, elevation_m, hub_rank, valid_from``).

The spec derives the label ``departure_delay_min`` from ``gate_delay_seconds`` (``/ 60``) at ingestion, so the
landing files do not carry it. Delays depend on what a model can learn: the carrier's punctuality, the origin's
congestion (hub rank, runways), the hour (delays build up through the day), the weather at the origin that day
(shared by its flights, so recent delays at an airport say something about the next ones), the aircraft and
the route length; plus noise and a long right tail.

The world (carriers, airports) depends only on ``seed``; each day's rows on ``seed`` and the date, so the same
arguments give the same bytes and a day does not change when the generated range grows.

CLI: ``python -m include.examples.flight_delays_generator --root file:///tmp/data --start 2026-11-01 --days 7``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DATASET = "departures"
CARRIERS = ("AA", "DL", "UA", "WN", "B6", "AS", "NK", "F9")
# Mean extra minutes of delay per carrier (punctuality).
_CARRIER_DELAY = (6.0, 3.0, 7.0, 8.0, 11.0, 4.0, 14.0, 12.0)
AIRPORTS = ("ATL", "ORD", "DFW", "DEN", "LAX", "JFK", "SFO", "SEA", "BOS", "MIA", "PHX", "MSP")
# (runways, elevation in m, hub rank 1 = largest)
_AIRPORT_INFO = (
    (5, 313.0, 1),
    (8, 205.0, 1),
    (7, 185.0, 1),
    (6, 1655.0, 2),
    (4, 38.0, 1),
    (4, 4.0, 2),
    (4, 4.0, 2),
    (3, 131.0, 2),
    (6, 6.0, 3),
    (4, 2.0, 3),
    (3, 346.0, 3),
    (4, 256.0, 3),
)
AIRCRAFT = ("A320", "A321", "B737", "B738", "B739", "E175", "CRJ9")
_AIRCRAFT_SEATS = (150, 190, 126, 166, 179, 76, 76)
_AIRCRAFT_DELAY = (0.0, 1.5, 0.5, 0.5, 1.0, -1.0, 2.0)


def _day_seed(seed: int, day: date) -> int:
    return seed * 1_000_003 + day.toordinal()


def generate_day(day: date, rows_per_day: int = 1500, seed: int = 11) -> pd.DataFrame:
    """Return one day of departures (scheduled on ``day``, UTC), without the derived label."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(_day_seed(seed, day))
    n = rows_per_day
    n_airports = len(AIRPORTS)
    # Traffic concentrates at the big hubs.
    weights = np.array([1.0 / rank for _, _, rank in _AIRPORT_INFO])
    origin = rng.choice(n_airports, size=n, p=weights / weights.sum())
    dest = (origin + rng.integers(1, n_airports, size=n)) % n_airports
    carrier = rng.integers(0, len(CARRIERS), size=n)
    aircraft = rng.integers(0, len(AIRCRAFT), size=n)
    # Departures between 05:00 and 23:00 UTC, more in the morning and evening banks.
    minutes = np.clip(rng.normal(np.where(rng.random(n) < 0.5, 8 * 60, 17 * 60), 150), 5 * 60, 23 * 60).astype(int)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    scheduled = pd.to_datetime([start + timedelta(minutes=int(m)) for m in minutes], utc=True)
    # Weather per airport and day: most days calm, some stormy for every flight out of that airport.
    weather_by_airport = rng.choice(4, size=n_airports, p=(0.6, 0.25, 0.1, 0.05))
    weather = weather_by_airport[origin]
    distance = np.round(rng.uniform(250, 4500, size=n), 1)
    runways = np.array([r for r, _, _ in _AIRPORT_INFO])[origin]
    hub_rank = np.array([h for _, _, h in _AIRPORT_INFO])[origin]
    hour = minutes // 60
    mean_delay = (
        np.array(_CARRIER_DELAY)[carrier]
        + 4.0 * (4 - hub_rank)
        - 0.8 * runways
        + 0.9 * np.maximum(hour - 9, 0)
        + 12.0 * weather**1.5
        + np.array(_AIRCRAFT_DELAY)[aircraft]
        + 0.001 * distance
    )
    tail = rng.exponential(np.maximum(mean_delay, 1.0))
    delay_min = np.round(np.maximum(-10.0, mean_delay + rng.normal(0, 6, size=n) + 0.6 * tail - 0.6 * mean_delay), 1)
    frame = pd.DataFrame(
        {
            "flight_id": [f"{CARRIERS[c]}{day:%y%m%d}{i:05d}" for i, c in enumerate(carrier)],
            "carrier_code": np.array(CARRIERS)[carrier],
            "origin_airport": np.array(AIRPORTS)[origin],
            "dest_airport": np.array(AIRPORTS)[dest],
            "scheduled_departure": scheduled.astype("datetime64[us, UTC]"),
            "aircraft_type": np.array(AIRCRAFT)[aircraft],
            "distance_km": distance,
            "seats": np.array(_AIRCRAFT_SEATS)[aircraft].astype("int64"),
            "scheduled_hour": hour.astype("int64"),
            "weather_severity": weather.astype("int64"),
            "gate_delay_seconds": np.round(delay_min * 60.0, 0),
        }
    )
    return frame.sort_values(["scheduled_departure", "flight_id"], kind="mergesort").reset_index(drop=True)


def airports_table(valid_from: date = date(2020, 1, 1)) -> pd.DataFrame:
    """The per-airport static table (one row per airport, valid from ``valid_from``)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "origin_airport": list(AIRPORTS),
            "runway_count": [r for r, _, _ in _AIRPORT_INFO],
            "elevation_m": [e for _, e, _ in _AIRPORT_INFO],
            "hub_rank": [h for _, _, h in _AIRPORT_INFO],
            "valid_from": pd.to_datetime([valid_from.isoformat()] * len(AIRPORTS), utc=True).astype(
                "datetime64[us, UTC]"
            ),
        }
    )


def to_bytes(frame: pd.DataFrame, file_format: str = "jsonl") -> bytes:
    """Serialise a partition deterministically: JSON lines (timestamps ISO-8601 UTC), CSV or Parquet."""
    buffer = io.BytesIO()
    if file_format == "parquet":
        frame.to_parquet(buffer, index=False, compression="snappy")
        return buffer.getvalue()
    out = frame.copy()
    out["scheduled_departure"] = out["scheduled_departure"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if file_format == "csv":
        out.to_csv(buffer, index=False)
        return buffer.getvalue()
    if file_format == "jsonl":
        lines = (json.dumps(row, separators=(",", ":")) for row in out.to_dict(orient="records"))
        return ("\n".join(lines) + "\n").encode()
    raise ValueError(f"file_format must be 'jsonl', 'csv' or 'parquet', not {file_format!r}")


def partition_uri(root_uri: str, day: date, file_format: str = "jsonl") -> str:
    """The landing URI of one day's file: ``<root>/landing/departures/dt=YYYY-MM-DD/part-0.<format>``."""
    return f"{root_uri.rstrip('/')}/landing/{DATASET}/dt={day:%Y-%m-%d}/part-0.{file_format}"


def generate_days(
    root_uri: str,
    start: date,
    days: int,
    rows_per_day: int = 1500,
    seed: int = 11,
    file_format: str = "jsonl",
    conn_id: str | None = None,
) -> list[str]:
    """Write ``days`` daily partitions from ``start`` and the static airports table under ``root_uri``.

    :param root_uri: data root (``file://``, ``s3://`` or ``gs://``; a plain path means ``file://``).
    :param start: first day (UTC).
    :param days: number of days.
    :param rows_per_day: departures per day.
    :param seed: same seed, same bytes.
    :param file_format: ``jsonl``, ``csv`` or ``parquet``.
    :param conn_id: storage connection for remote roots.
    :return: the URIs written: the static table, then the days in order.
    """
    from mlops_provider.storage import write_bytes_atomic

    if "://" not in root_uri:
        from pathlib import Path

        root_uri = Path(root_uri).expanduser().resolve().as_uri()
    static_uri = f"{root_uri.rstrip('/')}/static/airports/airports.parquet"
    write_bytes_atomic(to_bytes(airports_table(), "parquet"), static_uri, conn_id)
    written = [static_uri]
    for offset in range(days):
        day = start + timedelta(days=offset)
        uri = partition_uri(root_uri, day, file_format)
        write_bytes_atomic(to_bytes(generate_day(day, rows_per_day, seed), file_format), uri, conn_id)
        written.append(uri)
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m include.examples.flight_delays_generator",
        description="Write deterministic daily partitions of synthetic flight departures to <root>/landing/departures/.",
    )
    parser.add_argument("--root", default=None, help="data root URI or path (default: [mlops] data_root)")
    parser.add_argument("--start", required=True, type=date.fromisoformat, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--days", type=int, default=7, help="number of daily partitions (default 7)")
    parser.add_argument("--rows-per-day", type=int, default=1500, help="departures per day (default 1500)")
    parser.add_argument("--seed", type=int, default=11, help="random seed; same seed, same bytes (default 11)")
    parser.add_argument("--format", dest="file_format", choices=("jsonl", "csv", "parquet"), default="jsonl")
    parser.add_argument("--conn-id", default=None, help="storage connection id for s3:// or gs:// roots")
    args = parser.parse_args(argv)
    if args.root is None:
        from mlops_provider.settings import get_settings

        args.root = get_settings().data_root
    for uri in generate_days(
        args.root, args.start, args.days, args.rows_per_day, args.seed, args.file_format, args.conn_id
    ):
        print(uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
