"""Trigger that waits, without holding a worker slot, until a source partition holds data files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class SourceDataTrigger(BaseTrigger):
    """Poll ``uri`` until it holds at least one ``*.parquet``/``*.csv`` file, or until ``deadline``.

    :param uri: file or folder to watch.
    :param conn_id: storage connection for ``uri`` (default: the scheme's default connection).
    :param poke_interval: seconds between checks.
    :param deadline: Unix time after which the trigger gives up with a ``timeout`` event; ``None`` waits forever.
    """

    def __init__(
        self, *, uri: str, conn_id: str | None = None, poke_interval: float = 60.0, deadline: float | None = None
    ) -> None:
        super().__init__()
        self.uri = uri
        self.conn_id = conn_id
        self.poke_interval = poke_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the dotted path and every constructor argument."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"uri": self.uri, "conn_id": self.conn_id, "poke_interval": self.poke_interval, "deadline": self.deadline},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check in a worker thread (storage SDKs block), sleep between checks, yield exactly one event."""
        from mlops_provider.partitions import has_source_data

        loop = asyncio.get_running_loop()
        try:
            while True:
                if await loop.run_in_executor(None, has_source_data, self.uri, self.conn_id):
                    yield TriggerEvent({"status": "success", "uri": self.uri})
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield TriggerEvent(
                        {"status": "timeout", "uri": self.uri, "message": f"no data at {self.uri} before the deadline"}
                    )
                    return
                self.log.info("No data at %s yet; checking again in %ss", self.uri, self.poke_interval)
                await asyncio.sleep(self.poke_interval)
        except Exception as err:  # the triggerer must get an event, not a crash
            yield TriggerEvent({"status": "error", "uri": self.uri, "message": f"{type(err).__name__}: {err}"})
