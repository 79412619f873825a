"""Daily partitions of a data interval: resolve the dates an operator works on and their zone URIs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import MlopsError

if TYPE_CHECKING:
    from airflow.sdk import Context

MAX_PARTITIONS = 3660


def _to_date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise MlopsError(f"{text!r} is not a date; partition dates are YYYY-MM-DD (e.g. '{{{{ ds }}}}').") from None


def context_date(context: Context | None) -> date:
    """Return the run's data date: its logical date, else its ``run_after`` date (asset/manual runs), else today."""
    if context:
        for key in ("logical_date", "data_interval_start"):
            found = _to_date(context.get(key))
            if found:
                return found
        dag_run = context.get("dag_run")
        found = _to_date(getattr(dag_run, "run_after", None)) if dag_run is not None else None
        if found:
            return found
    return datetime.now(UTC).date()


def resolve_dates(start: Any, end: Any, context: Context | None = None) -> list[date]:
    """Return every day from ``start`` to ``end`` inclusive; empty values default to the run's date."""
    first = _to_date(start)
    last = _to_date(end)
    if first is None and last is None:
        first = last = context_date(context)
    first = first or last
    last = last or first
    assert first is not None and last is not None
    if last < first:
        raise MlopsError(f"partition_end {last} is before partition_start {first}; swap them.")
    count = (last - first).days + 1
    if count > MAX_PARTITIONS:
        raise MlopsError(f"{count} daily partitions requested ({first}..{last}); at most {MAX_PARTITIONS}.")
    return [first + timedelta(days=i) for i in range(count)]


def partition_uri(zone_uri: str, day: date, filename: str = "data.parquet") -> str:
    """Return ``<zone_uri>/dt=YYYY-MM-DD/<filename>``."""
    return f"{zone_uri.rstrip('/')}/dt={day:%Y-%m-%d}/{filename}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the UTC start of ``day`` and of the next day."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)
