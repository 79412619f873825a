"""A valid model spec (inline contract, generic names) that each test mutates one key of."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

CONTRACT: dict[str, Any] = {
    "dataset": "orders",
    "timestamp_column": "ordered_at",
    "columns": {
        "order_id": {"type": "string", "nullable": False, "unique": True},
        "shop_id": {"type": "int64", "nullable": False},
        "region_code": {"type": "string", "nullable": False},
        "ordered_at": {"type": "timestamp", "nullable": False},
        "basket_value": {"type": "float64", "nullable": False},
        "items": {"type": "int64", "nullable": False},
        "pay_method": {"type": "string", "nullable": False},
        "refund_value": {"type": "float64", "nullable": False},
        "refunded": {"type": "int64", "nullable": False},
    },
}

SPEC: dict[str, Any] = {
    "name": "refunds",
    "dataset": "orders",
    "contract": CONTRACT,
    "derive": {"refunded": "refund_value > 0"},
    "entities": {"shop_id": "int64", "region_code": "string"},
    "timestamp_column": "ordered_at",
    "label": "refunded",
    "task": "binary",
    "features": {
        "aggregates": [
            {"entity": "shop_id", "functions": ["count"], "windows": ["1d", "7d"]},
            {"entity": "region_code", "column": "basket_value", "function": "mean", "window": "7d", "label_lag": "1d"},
        ],
        "static": [
            {
                "name": "shops",
                "entity": "shop_id",
                "path": "{data_root}/static/shops.parquet",
                "features": {"shop_age_days": "int64"},
            }
        ],
        "request": ["basket_value", "items"],
        "categoricals": ["pay_method"],
    },
}


@pytest.fixture
def spec_dict() -> dict[str, Any]:
    return copy.deepcopy(SPEC)


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write a spec mapping to ``<tmp>/models/<name>.yaml`` and return its path."""

    def write(raw: dict[str, Any], name: str | None = None) -> Path:
        folder = tmp_path / "models"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name or raw.get('name', 'spec')}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write
