"""Fused mode: the predictor looks the features up itself, in process, instead of behind a separate transformer.

:class:`FusedPredictor` is the :class:`~mlops_serving.predictor.XGBoostPredictor` with the transformer's entity
handling (:class:`~mlops_serving.transformer.EntityRequests`) as its ``preprocess``/``postprocess``: the same
requests, answers, request ids, prediction log rows and explanations as the transformer in front of a predictor,
without the second server and the network hop between them (``benchmarks/serving.py`` measures both).

The transformer mode stays for deployments that scale or build the feature lookup separately from the model;
fused is for latency. The model spec's ``serving.mode`` (or ``--component``) chooses.
"""

from __future__ import annotations

from typing import Any

from mlops_serving.online_features import open_online_features
from mlops_serving.predictor import XGBoostPredictor
from mlops_serving.transformer import EntityRequests


class FusedPredictor(EntityRequests, XGBoostPredictor):
    """Serve an XGBoost booster on entity requests, with the features from Feast's online store.

    :param name: model name on the endpoint path.
    :param storage_uri: where the model is (see :class:`~mlops_serving.predictor.XGBoostPredictor`).
    :param feast_repo_path: Feast repository whose online store holds the features.
    :param feature_service: FeatureService with the model's features.
    :param feast_config: a resolved ``feature_store.yaml`` used instead of the repository's own.
    :param reject_unknown_entities: answer 400 for an entity the online store has never seen; False scores it
        with missing features.
    :param predictor_options: the predictor's other options (``model_version``, ``max_batch_size``,
        ``prediction_log_uri``...).
    """

    #: The feature tensor stays in this process: raw bytes, no JSON numbers.
    binary_feature_tensor = True

    def __init__(
        self,
        name: str,
        storage_uri: str,
        *,
        feast_repo_path: str,
        feature_service: str,
        feast_config: str | None = None,
        reject_unknown_entities: bool = True,
        **predictor_options: Any,
    ) -> None:
        super().__init__(name, storage_uri, **predictor_options)
        self.feast_repo_path = feast_repo_path
        self.feast_config = feast_config
        self.feature_service_name = feature_service
        self.reject_unknown_entities = reject_unknown_entities

    def load(self) -> bool:
        """Load the booster, then resolve its features in the FeatureService."""
        super().load()
        self.online_features = open_online_features(
            self.name,
            feast_repo_path=self.feast_repo_path,
            feast_config=self.feast_config,
            feature_service=self.feature_service_name,
            feature_names=self.feature_names,
            codes=self._codes,  # the booster's, already loaded: no second download of the model
            max_batch_size=self.max_batch_size,
            reject_unknown_entities=self.reject_unknown_entities,
        )
        return self.ready
