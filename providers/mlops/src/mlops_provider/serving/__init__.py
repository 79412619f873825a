"""Model serving domain logic, shared by the deploy operator, its trigger and the tooling.

* :mod:`~mlops_provider.serving.manifests` renders the KServe objects (InferenceService, ServingRuntime, the
  Feast ConfigMap) and the merge patches a rollout sends;
* :mod:`~mlops_provider.serving.status` reads an InferenceService's status (mode, traffic, readiness);
* :mod:`~mlops_provider.serving.analysis` sends smoke requests and judges error rate, p99 latency and output range;
* :mod:`~mlops_provider.serving.rollout` owns the KServe canary -> analysis -> promote / rollback state machine,
  its state kept on the InferenceService;
* :mod:`~mlops_provider.serving.local` owns the local blue/green endpoint (processes, proxy, switch).

Pure standard library at import time: DAG files import the operator, which imports these lazily or cheaply.
"""
