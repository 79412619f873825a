"""Names and assets of the shipped example: a fraud model on card transactions.

The provider is generic; this module is where the example's dataset, Feast project, feature service and
model are named, and the example DAGs in ``dags/``, the demo and the tests import them from here.
"""

from __future__ import annotations

from airflow.sdk import Asset

from mlops_provider.assets import (
    drift_asset,
    features_asset,
    model_asset,
    raw_asset,
    training_set_asset,
    validated_asset,
)

DATASET = "transactions"
FEAST_PROJECT = "fraud"
FEATURE_SERVICE = "fraud_model_v1"
LABEL_COLUMN = "is_fraud"
MODEL_NAME = "fraud_detector"
#: The aggregate views this model materializes; named because the repository also holds the model specs' views.
FEATURE_VIEWS = ["customer_stats", "merchant_stats"]
CONTRACT = "include/contracts/transactions.yaml"
#: The gate's segment check: online and card-present transactions must each hold, not only the overall metrics.
#: A column of the training set (the evaluation window): ``is_online`` is the model's view of ``channel``.
GATE_SEGMENTS = {"column": "is_online", "min_rows": 200}

RAW_TRANSACTIONS: Asset = raw_asset(DATASET)
VALIDATED_TRANSACTIONS: Asset = validated_asset(DATASET)
FRAUD_FEATURES: Asset = features_asset(FEAST_PROJECT)
TRANSACTIONS_TRAINING_SET: Asset = training_set_asset(DATASET)
FRAUD_MODEL: Asset = model_asset(MODEL_NAME)
FRAUD_MODEL_DRIFT: Asset = drift_asset(MODEL_NAME)
