"""Validate raw partitions against a data contract: valid rows to ``validated/``, the rest to ``quarantine/``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import DataValidationError, SchemaMismatchError, SourceDataMissingError
from mlops_provider.links.validation import ValidationReportLink, browsable_url
from mlops_provider.partitions import partition_uri, resolve_dates, zone_uri
from mlops_provider.settings import get_settings
from mlops_provider.utils.faults import fault_point

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.settings import MlopsSettings
    from mlops_provider.validation.contract import Contract


class DataValidationOperator(BaseOperator):
    """Validate each daily partition of an interval against a declared data contract.

    Every input row lands in exactly one place: ``validated/<dataset>/dt=.../data.parquet`` (typed as
    the contract declares) or ``quarantine/<dataset>/dt=.../data.parquet`` (original values plus a
    ``_failed_checks`` column). A JSON report per partition goes to
    ``reports/validation/<dataset>/dt=.../report.json`` and is linked from the task.

    Every partition is validated before anything is written, and each partition's verdict decides
    what it publishes:

    - **passed**: its valid rows replace ``validated/``, its invalid rows replace ``quarantine/``;
    - **failed** (more than ``max_invalid_share`` of its rows invalid, or an ``error`` dataset check
      failed): nothing goes to ``validated/``. The whole partition goes to ``quarantine/`` (rows that
      passed their own checks are tagged ``partition:max_invalid_share``), and a validated file of that
      day left by an earlier passing run is **removed**: it was validated from data that the raw zone no
      longer holds, so keeping it would publish rows the current data does not back. Downstream readers
      see the day as missing until a re-run passes.

    So the validated zone never holds output of a failed validation, and per partition
    ``validated rows + quarantined rows == input rows``. Writes are atomic per file (temporary file,
    then rename) and versioned (:func:`~mlops_provider.partitions.write_partition`: each distinct content of a
    validated or quarantine partition is kept as an immutable version; removing a day's validated file keeps its
    versions); the report, with the versions written, is written last. After the writes,
    :class:`~mlops_provider.exceptions.DataValidationError` names the failed checks with their counts
    (not retried: the same data gives the same verdict). A schema break (missing or undeclared columns,
    a column of the wrong type) raises :class:`~mlops_provider.exceptions.SchemaMismatchError` before
    anything is written. A retry or a re-run after a kill repeats the same writes with the same result.

    :param dataset: dataset name; selects ``raw/<dataset>`` and the output zones. (templated)
    :param contract: contract YAML, relative to ``[mlops] project_root`` or absolute, or the contract's mapping
        itself (as a model spec holds it inline). (templated)
    :param partition_start: first day, YYYY-MM-DD; empty means the run's date. (templated)
    :param partition_end: last day (inclusive); empty means ``partition_start``. (templated)
    :param max_invalid_share: overrides the contract's ``max_invalid_share``. (templated)
    :param source_zone: zone to read from (default ``raw``). (templated)
    :param storage_conn_id: connection for ``data_root``; default ``[mlops] storage_conn_id``. (templated)
    """

    template_fields: Sequence[str] = (
        "dataset",
        "contract",
        "partition_start",
        "partition_end",
        "max_invalid_share",
        "source_zone",
        "storage_conn_id",
    )
    operator_extra_links = (ValidationReportLink(),)
    ui_color = "#e8f0d8"

    def __init__(
        self,
        *,
        dataset: str,
        contract: str | dict[str, Any],
        partition_start: str = "",
        partition_end: str = "",
        max_invalid_share: float | str | None = None,
        source_zone: str = "raw",
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dataset = dataset
        self.contract = contract
        self.partition_start = partition_start
        self.partition_end = partition_end
        self.max_invalid_share = max_invalid_share
        self.source_zone = source_zone
        self.storage_conn_id = storage_conn_id

    @cached_property
    def settings(self) -> MlopsSettings:
        """Bundle settings, read once per task run."""
        return get_settings()

    def _zone(self, zone: str) -> str:
        return zone_uri(self.settings.data_root, zone, self.dataset)

    def _history(self, contract: Contract, first: date) -> dict[date, int]:
        """Input row counts of the partitions before ``first``, from their validation reports."""
        from mlops_provider.storage import storage_path

        check = contract.check("row_count_change")
        if check is None:
            return {}
        history: dict[date, int] = {}
        lookback = int(check.options.get("lookback_partitions", 7))
        for i in range(lookback, 0, -1):
            day = first - timedelta(days=i)
            path = storage_path(partition_uri(self._zone("reports/validation"), day, "report.json"), self._conn_id)
            if path.exists():
                try:
                    history[day] = int(json.loads(path.read_bytes())["input_rows"])
                except (ValueError, KeyError, TypeError):
                    self.log.warning("Ignoring unreadable validation report %s", path)
        return history

    @property
    def _conn_id(self) -> str | None:
        return self.storage_conn_id or self.settings.storage_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Validate every partition, write the outputs, then fail if any partition breaks its contract."""
        from mlops_provider.partitions import clear_current, write_partition
        from mlops_provider.storage import parquet_bytes, read_parquet, storage_path, write_bytes_atomic
        from mlops_provider.validation.contract import load_contract
        from mlops_provider.validation.engine import quarantine_partition, validate_frame

        if isinstance(self.contract, dict):
            from mlops_provider.validation.contract import parse_contract

            contract = parse_contract(self.contract, source=f"contract of {self.dataset} (inline)")
        else:
            contract = load_contract(self.contract, self.settings.project_root)
        dates = resolve_dates(self.partition_start, self.partition_end, context)
        threshold = None if self.max_invalid_share in (None, "") else float(self.max_invalid_share)
        now = datetime.now(UTC)

        # Validate everything first: a schema break in any partition must leave every zone untouched.
        history = self._history(contract, dates[0])
        results = []
        for day in dates:
            source = partition_uri(self._zone(self.source_zone), day)
            if not storage_path(source, self._conn_id).exists():
                raise SourceDataMissingError(
                    f"{self.source_zone} partition {source} does not exist; ingest {day} first "
                    f"(IngestionOperator with partition_start={day})."
                )
            df = read_parquet(source, self._conn_id)
            try:
                result = validate_frame(
                    df,
                    contract,
                    partition_date=day,
                    history_rows=[history[d] for d in sorted(history)],
                    now=now,
                    max_invalid_share=threshold,
                )
            except SchemaMismatchError as err:
                raise SchemaMismatchError(f"{self.dataset} dt={day} ({source}): {err}", report=err.report) from None
            history[day] = len(df)
            # Only the encoded outputs wait for the write phase, not the frames: memory holds one partition's
            # frames at a time, however many days the interval has.
            if result.report["passed"]:
                outputs = {"quarantine": parquet_bytes(result.quarantine), "validated": parquet_bytes(result.valid)}
            else:
                outputs = {"quarantine": parquet_bytes(quarantine_partition(df, result))}
            results.append((day, source, len(df), outputs, result.report))
            del df, result

        # The verdict of every partition is known before anything is written. Per partition, in this order:
        # a passed one writes quarantine, then validated, then its report; a failed one first removes any
        # validated file of that day (an earlier run's, from data that no longer matches raw), then writes
        # the whole partition to quarantine and its report. Every write is atomic (temporary file + rename).
        partitions = []
        for day, source, input_rows, outputs, verdict in results:
            passed = bool(verdict["passed"])
            validated_uri = partition_uri(self._zone("validated"), day)
            quarantine_uri = partition_uri(self._zone("quarantine"), day)
            report_uri = partition_uri(self._zone("reports/validation"), day, "report.json")
            report = {**verdict, "source_uri": source, "quarantine_uri": quarantine_uri}
            report["rows_passing_row_checks"] = verdict["valid_rows"]
            versions: dict[str, str] = {}
            if passed:
                versions["quarantine"] = write_partition(
                    outputs["quarantine"], self._zone("quarantine"), day, conn_id=self._conn_id
                )
                versions["validated"] = write_partition(
                    outputs["validated"], self._zone("validated"), day, conn_id=self._conn_id
                )
            else:
                if clear_current(self._zone("validated"), day, conn_id=self._conn_id):
                    self.log.warning(
                        "%s dt=%s failed validation: removed the validated partition %s left by an earlier run "
                        "(it no longer matches the raw data).",
                        self.dataset,
                        day,
                        validated_uri,
                    )
                versions["quarantine"] = write_partition(
                    outputs["quarantine"], self._zone("quarantine"), day, conn_id=self._conn_id
                )
                report.update(valid_rows=0, invalid_rows=input_rows)
            report["versions"] = versions
            report["validated_uri"] = validated_uri if passed else None
            report["published"] = passed
            write_bytes_atomic(json.dumps(report, indent=2, default=str).encode(), report_uri, self._conn_id)
            fault_point("validation.mid_write")
            self.log.info(
                "%s dt=%s: %s; %d valid, %d quarantined (%.2f%% failed row checks); report %s",
                self.dataset,
                day,
                "published" if passed else "FAILED, nothing published",
                report["valid_rows"],
                report["invalid_rows"],
                100 * verdict["invalid_share"],
                report_uri,
            )
            partitions.append(
                {
                    "date": day.isoformat(),
                    "validated_uri": validated_uri if passed else None,
                    "quarantine_uri": quarantine_uri,
                    "report_uri": report_uri,
                    "valid_rows": report["valid_rows"],
                    "invalid_rows": report["invalid_rows"],
                    "passed": passed,
                    "failed_checks": verdict["failed_checks"],
                    "versions": versions,
                }
            )

        failing = [(p, r) for p, (_, _, _, _, r) in zip(partitions, results, strict=True) if not p["passed"]]
        link_uri = (failing[0][0] if failing else partitions[-1])["report_uri"]
        ValidationReportLink.persist(context, url=browsable_url(link_uri))
        valid_rows = sum(p["valid_rows"] for p in partitions)
        invalid_rows = sum(p["invalid_rows"] for p in partitions)
        if failing:
            lines = []
            for part, verdict in failing:
                checks = ", ".join(f"{k}={v}" for k, v in part["failed_checks"].items()) or "none"
                dataset_failed = verdict["dataset_checks_failed"]
                why = (
                    f"dataset checks failed: {', '.join(dataset_failed)} (whole partition quarantined)"
                    if dataset_failed
                    else f"{verdict['invalid_share']:.1%} invalid > max {verdict['max_invalid_share']:.1%}"
                )
                detail = "; ".join(
                    f"{c['name']}: {c['detail']}"
                    for c in verdict["checks"]
                    if not c["passed"] and c["level"] == "dataset"
                )
                lines.append(
                    f"dt={part['date']}: {why}; failed checks (rows): {checks}"
                    + (f"; {detail}" if detail else "")
                    + f"; {part['invalid_rows']} rows in {part['quarantine_uri']}, report {part['report_uri']}"
                )
            raise DataValidationError(
                f"{self.dataset}: {len(failing)} of {len(partitions)} partitions failed validation against "
                f"{contract.source}. Failed partitions were not published: all their rows are in quarantine "
                "(valid + quarantined == input) and any earlier validated file of those days was removed. "
                "Fix the source and re-run, or raise max_invalid_share if this is expected.\n" + "\n".join(lines),
                report={"partitions": partitions},
                report_uri=failing[0][0]["report_uri"],
            )

        summary = {
            "dataset": self.dataset,
            "valid_rows": valid_rows,
            "invalid_rows": invalid_rows,
            "partitions": [{k: v for k, v in p.items() if k not in ("passed", "failed_checks")} for p in partitions],
        }
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "dataset": self.dataset,
                "zone": "validated",
                "valid_rows": valid_rows,
                "invalid_rows": invalid_rows,
                "partitions": [{"date": p["date"], "rows": p["valid_rows"]} for p in partitions],
            }
        return summary
