"""Sensor that waits for a day's source data to land."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout

from mlops_provider.exceptions import SourceDataMissingError
from mlops_provider.partitions import resolve_dates
from mlops_provider.settings import get_settings
from mlops_provider.utils.deferrable import default_deferrable

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.settings import MlopsSettings


class SourceDataSensor(BaseSensorOperator):
    """Wait until the source partition of ``partition_date`` holds at least one Parquet or CSV file.

    The source is the one :class:`~mlops_provider.operators.ingestion.IngestionOperator` reads:
    ``source_uri`` with ``{ds}`` filled, or ``<data_root>/landing/<dataset>/dt={ds}``. With
    ``deferrable=True`` the wait runs in the triggerer (:class:`SourceDataTrigger`) instead of a worker.

    :param dataset: dataset name. (templated)
    :param partition_date: day to wait for, YYYY-MM-DD; empty means the run's date. (templated)
    :param source_uri: source template (see IngestionOperator). (templated)
    :param source_conn_id: connection for the source. (templated)
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("dataset", "partition_date", "source_uri", "source_conn_id")
    ui_color = "#f5ecd8"

    def __init__(
        self,
        *,
        dataset: str,
        partition_date: str = "",
        source_uri: str | None = None,
        source_conn_id: str | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.partition_date = partition_date
        self.source_uri = source_uri
        self.source_conn_id = source_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    @cached_property
    def settings(self) -> MlopsSettings:
        """Bundle settings, read once per task run (not once per poke)."""
        return get_settings()

    def _uri(self, context: Context) -> str:
        from mlops_provider.partitions import source_uri_for

        day = resolve_dates(self.partition_date, self.partition_date, context)[0]
        return source_uri_for(self.source_uri, self.settings.data_root, self.dataset, day)

    def poke(self, context: Context) -> bool:
        """Return whether the source partition holds data files."""
        from mlops_provider.partitions import has_source_data

        uri = self._uri(context)
        found = has_source_data(uri, self.source_conn_id)
        self.log.info("Source %s %s", uri, "has data" if found else "has no data yet")
        return found

    def execute(self, context: Context) -> Any:
        """Check once; if the data is not there yet and deferrable, hand the wait to the triggerer."""
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as err:  # Airflow's message names neither the dataset nor the place
                raise AirflowSensorTimeout(self._timeout_message(self._uri(context))) from err
        if self.poke(context):
            return None
        from mlops_provider.triggers.ingestion import SourceDataTrigger

        self.defer(
            trigger=SourceDataTrigger(
                uri=self._uri(context),
                conn_id=self.source_conn_id,
                poke_interval=float(self.poke_interval),
                deadline=time.time() + float(self.timeout),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def _timeout_message(self, uri: str) -> str:
        return f"No source data for {self.dataset} at {uri} within {self.timeout}s; check the upstream export."

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        """Map the trigger's event to success, a sensor timeout or a failure."""
        status = event.get("status")
        if status == "success":
            self.log.info("Source data arrived at %s", event["uri"])
            return event["uri"]
        if status == "timeout":
            raise AirflowSensorTimeout(self._timeout_message(event["uri"]))
        raise SourceDataMissingError(f"Waiting for {event.get('uri')} failed: {event.get('message')}")
