"""Kubernetes label and field selectors, as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside a ``(...)`` value set."""
    terms, depth, current = [], 0, []
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t.strip() for t in terms if t.strip()]


def parse_label_selector(selector: str | None) -> Callable[[dict], bool]:
    """Return a predicate over a labels dict for ``selector`` (=, ==, !=, in, notin, exists, !exists)."""
    if not selector:
        return lambda labels: True
    checks: list[Callable[[dict], bool]] = []
    for term in _split_terms(selector):
        match = _SET_RE.match(term)
        if match:
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "==" in term:
            key, value = (s.strip() for s in term.split("==", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif "=" in term:
            key, value = (s.strip() for s in term.split("=", 1))
            checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            checks.append(lambda labels, k=term[1:].strip(): k not in labels)
        else:
            checks.append(lambda labels, k=term: k in labels)
    return lambda labels: all(check(labels or {}) for check in checks)


def _field(obj: dict, path: str):
    value: object = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def parse_field_selector(selector: str | None) -> Callable[[dict], bool]:
    """Return a predicate over an object for a field selector (``a.b=v``, ``a.b==v``, ``a.b!=v``)."""
    if not selector:
        return lambda obj: True
    checks: list[Callable[[dict], bool]] = []
    for term in _split_terms(selector):
        if "!=" in term:
            path, value = (s.strip() for s in term.split("!=", 1))
            checks.append(lambda obj, p=path, v=value: str(_field(obj, p) or "") != v)
        else:
            path, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            checks.append(lambda obj, p=path, v=value: str(_field(obj, p) or "") == v)
    return lambda obj: all(check(obj) for check in checks)
