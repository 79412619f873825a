"""A faithful fake Kubernetes API server for tests (see ``tests/fixtures/fake_k8s.py``)."""

from tests.fake_k8s.pods import PodBehavior
from tests.fake_k8s.server import FakeKubernetes

__all__ = ["FakeKubernetes", "PodBehavior"]
