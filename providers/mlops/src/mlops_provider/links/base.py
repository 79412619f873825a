"""Base class of the provider's operator extra links."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

#: URLs persisted by this process, keyed on the task instance and the link's XCom key (see ``get_link``).
_PERSISTED: dict[tuple[Any, ...], str] = {}


def _ti_identity(ti: Any, xcom_key: str) -> tuple[Any, ...]:
    return (ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1), xcom_key)


class MlopsBaseLink(BaseOperatorLink):
    """An extra link whose URL is formatted from parts pushed to XCom during ``execute``.

    Subclasses set ``name``, ``key`` and ``format_str``; the operator calls ``persist(context, **parts)``.
    Airflow 3's API server reads the finished URL from XCom under ``xcom_key``, so ``persist`` stores it
    there. After the task, the worker calls ``get_link`` for every link and pushes its answer under the same
    key: ``get_link`` answers from what this process persisted, so a link the task did not persist (MLflow
    without a UI, a task that failed early) costs no XCom read and logs no "XCom not found" error.
    """

    name: ClassVar[str]  # type: ignore[misc]
    key: ClassVar[str]
    format_str: ClassVar[str]

    @property
    def xcom_key(self) -> str:
        """XCom key under which the finished URL is stored."""
        return f"_link_{self.key}"

    @classmethod
    def persist(cls, context: Context, **parts: object) -> str:
        """Format the link from ``parts`` and store it for this task instance; return the URL."""
        url = cls.format_str.format(**parts)
        ti = context["ti"]
        xcom_key = cls().xcom_key
        ti.xcom_push(key=xcom_key, value=url)
        _PERSISTED[_ti_identity(ti, xcom_key)] = url
        return url

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the URL ``persist`` stored for this task instance in this process, or an empty string."""
        return _PERSISTED.get(_ti_identity(ti_key, self.xcom_key), "")
