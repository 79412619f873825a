"""Istio's admission for the fake Kubernetes API server: VirtualServices and DestinationRules are checked against
Istio's official CRD schemas (``/work/shared/schemas/istio``, strict: unknown fields refused) on every write.

Register it with :func:`admit_istio_objects`; a write that does not validate answers 422 Invalid, as the API server
does for a custom object its CRD schema rejects, and is not stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fake_k8s.store import ApiError

if TYPE_CHECKING:
    from tests.fake_k8s.server import FakeKubernetes

ISTIO_PLURALS = {"virtualservices": "VirtualService", "destinationrules": "DestinationRule"}


class IstioSchemaAdmission:
    """A controller that refuses an Istio object its CRD schema rejects; counts the objects it admitted."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.admitted = 0

    def __call__(self, obj: dict) -> None:
        from tests.unit.serving.test_istio_shadow import validate_istio

        name = (obj.get("metadata") or {}).get("name")
        try:
            if obj.get("kind") != self.kind:
                raise AssertionError(f"kind {obj.get('kind')!r} stored as {self.kind}")
            validate_istio({k: v for k, v in obj.items() if k != "status"})
        except Exception as exc:  # jsonschema's ValidationError or the strict checks' AssertionError
            raise ApiError(
                422, "Invalid", f'{self.kind}.networking.istio.io "{name}" is invalid: {exc}', name
            ) from None
        self.admitted += 1


def admit_istio_objects(fake_k8s: FakeKubernetes) -> dict[str, IstioSchemaAdmission]:
    """Validate every VirtualService and DestinationRule written to ``fake_k8s``; return the admissions by plural."""
    admissions = {plural: IstioSchemaAdmission(kind) for plural, kind in ISTIO_PLURALS.items()}
    for plural, admission in admissions.items():
        fake_k8s.add_controller(plural, admission)
    return admissions
