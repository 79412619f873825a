"""Model specs: one validated YAML file per model, turned into DAGs and Feast objects.

- :mod:`~mlops_provider.spec.model`: the spec's dataclasses (what the rest of the bundle reads);
- :mod:`~mlops_provider.spec.load`: reading and validating ``<folder>/<model>.yaml``;
- :mod:`~mlops_provider.spec.derive`: derived columns, validated at parse time and evaluated at ingestion;
- :mod:`~mlops_provider.spec.dags`: the training, materialization and drift DAGs of a spec;
- :mod:`~mlops_provider.spec.feast`: the Feast entities, views and feature service of a spec.

Nothing is imported here, so importing one submodule loads only what it needs.
"""
