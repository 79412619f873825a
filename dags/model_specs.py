"""### DAGs generated from model specs

For every model spec `include/models/<model>.yaml` (folder: `[mlops] model_specs_folder`), three Airflow DAGs built by
`mlops_provider.spec.dags` from the same operators the fraud example's DAGs compose by hand:

- `<model>__training`: cooldown, ingest, validate, features, training set, train, gate, deploy, smoke test;
  scheduled by `validated.<dataset> | drift.<model>`;
- `<model>__materialization`: the interval's data ingested, validated and materialized, on the spec's schedule;
- `<model>__drift`: the drift check on the spec's cadence, emitting `drift.<model>` when drift exceeds its policy.

An invalid spec shows up as this file's import error, naming the spec file, the key and what was expected.
The spec reference is the README's "Bring your own model" section.
"""

from __future__ import annotations

from mlops_provider.spec.dags import dags_from_specs

globals().update(dags_from_specs())
