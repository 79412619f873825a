"""Airflow provider for cloud-native MLOps: data, features, training, registry, serving and drift."""

from __future__ import annotations

__version__ = "0.1.0"
