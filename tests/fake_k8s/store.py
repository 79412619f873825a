"""The fake API server's object store: namespaced collections with the API server's bookkeeping.

``uid``, ``creationTimestamp``, ``resourceVersion`` bumped on every write (a PUT with a stale one -> 409
Conflict), ``generation`` bumped when anything outside metadata/status changes, the status subresource only
changes ``status``, POST of an existing name -> 409 AlreadyExists. Controllers registered per plural run after
every write and mutate the stored object in place (as a controller's reconcile would).
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable

from tests.fake_k8s.pods import rfc3339
from tests.fake_k8s.selectors import parse_field_selector, parse_label_selector

CORE = ""
KINDS = {
    "pods": "Pod",
    "events": "Event",
    "services": "Service",
    "configmaps": "ConfigMap",
    "secrets": "Secret",
    "serviceaccounts": "ServiceAccount",
    "persistentvolumeclaims": "PersistentVolumeClaim",
}

Controller = Callable[[dict], None]


class ApiError(Exception):
    """A failure the API answers with a ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str, name: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.name, self.kind = code, reason, message, name, kind


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch (``null`` deletes a key)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def spec_part(obj: dict) -> dict:
    """Everything of ``obj`` outside metadata and status (what bumps ``generation``)."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class ObjectStore:
    """Objects keyed by (group, plural) then (namespace, name), so v1beta1/v1 of a group share storage."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget every object and controller."""
        with self.lock:
            self._objects: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
            self._controllers: dict[str, list[Controller]] = {}
            self._rv = 1000

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion handed out."""
        return str(self._rv)

    def collection(self, group: str, plural: str) -> dict[tuple[str, str], dict]:
        """The live mapping ``(namespace, name) -> object`` of one collection (call under ``lock``)."""
        return self._objects.setdefault((group, plural), {})

    def next_rv(self) -> str:
        """Hand out the next resourceVersion."""
        self._rv += 1
        return str(self._rv)

    def add_controller(self, plural: str, fn: Controller) -> None:
        """Call ``fn(obj)`` after every write to an object of ``plural``."""
        with self.lock:
            self._controllers.setdefault(plural, []).append(fn)

    def _run_controllers(self, plural: str, obj: dict) -> None:
        for fn in self._controllers.get(plural, []):
            fn(obj)

    def create(self, group: str, plural: str, namespace: str, body: dict) -> dict:
        """Store a new object (``generateName`` supported); 409 when the name exists."""
        meta = body.setdefault("metadata", {})
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise ApiError(
                    422, "Invalid", f'{KINDS.get(plural, plural)} "" is invalid: metadata.name: Required value'
                )
        store = self.collection(group, plural)
        if (namespace, meta["name"]) in store:
            raise ApiError(409, "AlreadyExists", f'{plural} "{meta["name"]}" already exists', meta["name"], plural)
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(time.time())
        meta["generation"] = 1
        body.setdefault("kind", KINDS.get(plural, body.get("kind")))
        self._run_controllers(plural, body)
        meta["resourceVersion"] = self.next_rv()
        store[(namespace, meta["name"])] = body
        return body

    def replace(
        self, group: str, plural: str, namespace: str, existing: dict, body: dict, subresource: str | None
    ) -> dict:
        """Replace ``existing`` with ``body`` (or only its status); 409 on a stale resourceVersion."""
        meta = body.setdefault("metadata", {})
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != existing["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {plural} "{existing["metadata"]["name"]}": '
                "the object has been modified; please apply your changes to the latest version and try again",
                existing["metadata"]["name"],
                plural,
            )
        if subresource == "status":
            new = copy.deepcopy(existing)
            new["status"] = copy.deepcopy(body.get("status"))
        else:
            new = copy.deepcopy(body)
            kept = {k: existing["metadata"][k] for k in ("uid", "creationTimestamp", "generation", "namespace", "name")}
            new["metadata"] = {**new.get("metadata", {}), **kept}
            if "status" in existing:
                new["status"] = copy.deepcopy(existing["status"])
            else:
                new.pop("status", None)
            if spec_part(new) != spec_part(existing):
                new["metadata"]["generation"] = existing["metadata"].get("generation", 1) + 1
        self._run_controllers(plural, new)
        new["metadata"]["resourceVersion"] = self.next_rv()
        self.collection(group, plural)[(namespace, existing["metadata"]["name"])] = new
        return new

    def put(self, group: str, version: str, namespace: str, plural: str, body: dict) -> dict:
        """Create or replace an object directly (bookkeeping and controllers apply as for an API write)."""
        with self.lock:
            body = copy.deepcopy(body)
            body.setdefault("apiVersion", f"{group}/{version}" if group else version)
            existing = self.collection(group, plural).get((namespace, body["metadata"]["name"]))
            if existing is None:
                return self.create(group, plural, namespace, body)
            return self.replace(group, plural, namespace, existing, body, subresource=None)

    def select(
        self,
        group: str,
        namespace: str | None,
        plural: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict]:
        """Copies of the objects of a collection matching the selectors, sorted by namespace and name."""
        label_ok = parse_label_selector(label_selector)
        field_ok = parse_field_selector(field_selector)
        items = [
            copy.deepcopy(o)
            for (ns, _), o in sorted(self.collection(group, plural).items())
            if (namespace is None or ns == namespace)
            and label_ok((o.get("metadata") or {}).get("labels") or {})
            and field_ok(o)
        ]
        if plural == "events":
            items.sort(key=lambda o: int(o["metadata"]["resourceVersion"]))
        return items
