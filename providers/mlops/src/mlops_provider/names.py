"""Names that become path segments: one check, used wherever a zone path is built.

Dependency-free apart from the exception type, so ``settings`` and ``partitions`` can both use it.
"""

from __future__ import annotations

import re
from typing import Any

from mlops_provider.exceptions import InvalidNameError

__all__ = ["FEAST_REGISTRY_POOL", "PROMOTION_POOL", "SAFE_SEGMENT", "safe_segment", "zone_uri"]

#: Airflow pool (one slot) of every task that writes a Feast registry (apply, materialize): never two at once.
FEAST_REGISTRY_POOL = "mlops_feast_registry"
#: Airflow pool (one slot) of the gate and the deploy task: one promotion of a model at a time.
PROMOTION_POOL = "mlops_promotion"

#: A name that may become one path segment: no separators, no ``..``, not hidden, at most 128 characters.
SAFE_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def safe_segment(value: Any, what: str = "name") -> str:
    """Return ``value`` when it is safe as one path segment, else raise :class:`InvalidNameError` naming it.

    Dataset, model and other user-supplied names go through here before they are joined into a zone
    path, so ``..``, ``/`` or an absolute path can never point a write outside its zone.
    """
    text = value if isinstance(value, str) else str(value)
    if not SAFE_SEGMENT.fullmatch(text) or ".." in text:
        raise InvalidNameError(
            f"Invalid {what} {text[:200]!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit, without '..' or '/' (it becomes a folder name in the data zones)."
        )
    return text


def zone_uri(data_root: str, zone: str, name: str) -> str:
    """Return ``<data_root>/<zone>/<name>`` after checking ``name`` and each part of ``zone``."""
    for part in zone.split("/"):
        safe_segment(part, "zone")
    return f"{data_root.rstrip('/')}/{zone}/{safe_segment(name, 'dataset name')}"
