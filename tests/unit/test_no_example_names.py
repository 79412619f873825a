"""The provider and the model server name nothing of the shipped example (issue 9: no example in the provider).

The forbidden names are read from the example's own files, so a renamed column or a new feature service is
covered without editing this test:

* the columns of the example's data contract (``include/contracts/*.yaml``);
* the Feast objects of the example's feature repository (``include/feature_repo/*.py``): entities and
  their join keys, feature views, sources, on-demand views and feature services;
* the dataset, Feast project, feature service, label and model the example DAGs use
  (``include/fraud_example.py``), plus those names written out below in case that module moves.

Every file under ``providers/`` and ``kserve/`` is searched (code, docstrings, comments, packaging), case
insensitively and on word boundaries: ``amount`` is found, ``amount_total`` is not (``_`` is a word character,
so an identifier that merely contains a name is a different word).

Words that are also generic English (``amount``, ``channel``, ``country``, ``customer``, ``merchant``) stay
forbidden: the provider never needs them, and a placeholder (``<column>``, ``<dataset>``) or another word says
the same thing without suggesting the example's schema. The only exception is listed in ``ALLOWED`` with why.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("providers", "kserve")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist"}

#: The example's names as its DAGs use them (also read from include/fraud_example.py when it exists).
EXAMPLE_NAMES = {"transactions", "fraud", "fraud_detector", "fraud_model_v1", "is_fraud"}

#: Names of the example that the provider may use, and why.
ALLOWED = {
    # Feast's own convention: the entity dataframe column ``get_historical_features`` reads each row's
    # as-of time from. The provider has to name it to talk to Feast; the example merely follows Feast.
    "event_timestamp",
}

FEAST_OBJECTS = {
    "Entity",
    "FeatureService",
    "FeatureView",
    "OnDemandFeatureView",
    "BatchFeatureView",
    "StreamFeatureView",
    "FileSource",
    "PushSource",
    "RequestSource",
}
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def contract_columns() -> set[str]:
    names: set[str] = set()
    for path in sorted((REPO / "include" / "contracts").glob("*.y*ml")):
        contract = yaml.safe_load(path.read_text()) or {}
        names |= set(contract.get("columns") or {})
        if contract.get("dataset"):
            names.add(str(contract["dataset"]))
    return names


def feature_repo_names() -> set[str]:
    names: set[str] = set()
    for path in sorted((REPO / "include" / "feature_repo").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func not in FEAST_OBJECTS:
                continue
            for keyword in node.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    names.add(str(keyword.value.value))
                elif keyword.arg == "join_keys" and isinstance(keyword.value, ast.List):
                    names |= {str(e.value) for e in keyword.value.elts if isinstance(e, ast.Constant)}
    return names


def example_module_names() -> set[str]:
    """String constants of the example's names module (``DATASET = "..."``), identifiers only (no paths)."""
    path = REPO / "include" / "fraud_example.py"
    if not path.exists():
        return set()
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            if IDENTIFIER.match(node.value.value):
                names.add(node.value.value)
    return names


def forbidden_names() -> set[str]:
    return (contract_columns() | feature_repo_names() | example_module_names() | EXAMPLE_NAMES) - ALLOWED


def scanned_files() -> list[Path]:
    files = []
    for root in SCANNED:
        for path in sorted((REPO / root).rglob("*")):
            parts = set(path.relative_to(REPO).parts)
            if not path.is_file() or parts & SKIPPED_PARTS or any(p.endswith(".egg-info") for p in parts):
                continue
            files.append(path)
    return files


def test_the_forbidden_names_come_from_the_example():
    names = forbidden_names()
    # A broken reader would make the main test pass vacuously.
    assert {"customer_id", "channel", "is_fraud"} <= contract_columns()
    assert {"customer", "merchant", "fraud_model_v1"} <= feature_repo_names()
    assert {"transactions", "fraud_detector", "fraud_model_v1", "fraud"} <= names
    assert "event_timestamp" not in names
    assert len(scanned_files()) > 20


def test_provider_and_model_server_name_nothing_of_the_example():
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, forbidden_names()))) + r")\b", re.IGNORECASE)
    hits = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # binary files carry no names a reader sees
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for match in pattern.finditer(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {match.group(0)!r} in {line.strip()[:100]!r}")
    assert not hits, "example names in the provider or the model server:\n" + "\n".join(hits)
