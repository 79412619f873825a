"""Feast definitions of every model spec (``[mlops] model_specs_folder``, default ``include/models/*.yaml``).

Each spec's entities, aggregate and static views, request-time features and feature service are built by
:func:`mlops_provider.spec.feast.repo_objects`, all named ``<model>__...`` (the service as the spec says,
default ``<model>_v1``), and registered here next to the fraud example's hand-written definitions, in the
same repository and Feast project: one registry and one online store serve every model. A spec that does
not validate fails the import with its file and key named, so ``feast apply`` never registers half a model.

With several models in one project, materialize with ``feature_views=`` naming the model's views (the
generated DAGs and the example's DAGs do): the default, every online view, would build every model's
features from every dataset.
"""

from __future__ import annotations

from mlops_provider.spec.feast import repo_objects

# Feast (and FeastHook.load_definitions) collect the module's global objects.
globals().update(repo_objects())
