"""Base class of the provider's operator extra links."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey
    from airflow.sdk import BaseOperator, Context


class MlopsBaseLink(BaseOperatorLink):
    """An extra link whose URL is formatted from parts pushed to XCom during ``execute``.

    Subclasses set ``name``, ``key`` and ``format_str``; the operator calls ``persist(context, **parts)``.
    Airflow 3's API server reads the finished URL from XCom under ``xcom_key``, so ``persist`` stores it
    there and ``get_link`` reads it back.
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
        context["ti"].xcom_push(key=cls().xcom_key, value=url)
        return url

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the URL stored by ``persist`` for this task instance, or an empty string."""
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return value or ""
