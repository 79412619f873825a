"""When drift calls for retraining: the drift policy.

A verdict exceeds the policy when any of these holds:

- the share of drifted features is at least ``drift_share`` (Evidently's dataset-drift rule);
- any of the ``critical_features`` drifted;
- the model's performance on labeled recent data (the current window, or the delayed labels joined to the
  prediction log) dropped by more than ``max_performance_drop`` (absolute, in ``performance_metric`` units)
  from the holdout score its training run recorded;
- ``prediction_drift_triggers`` is set and the model's predictions drifted.

It is configured as a mapping (operator argument, or JSON in ``[mlops] drift_policy``), for example
``{"drift_share": 0.3, "critical_features": ["<feature>"], "max_performance_drop": 0.05}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mlops_provider.drift.scoring import METRICS


@dataclass(frozen=True)
class DriftPolicy:
    """Thresholds that turn per-feature verdicts into a retraining decision.

    :param drift_share: share of drifted features (0-1] at or above which drift exceeds the policy.
    :param critical_features: features whose drift alone exceeds the policy.
    :param max_performance_drop: largest tolerated drop of ``performance_metric`` (None: not checked).
    :param performance_metric: ``roc_auc``, ``average_precision``, ``accuracy`` or ``r2`` (default: the model's
        task's, ``roc_auc`` binary, ``accuracy`` multiclass, ``r2`` regression).
    :param prediction_drift_triggers: whether drift of the model's predictions alone exceeds the policy.
    """

    drift_share: float = 0.5
    critical_features: tuple[str, ...] = ()
    max_performance_drop: float | None = None
    performance_metric: str | None = None
    prediction_drift_triggers: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.drift_share <= 1:
            raise ValueError(f"Drift policy drift_share must be in (0, 1], got {self.drift_share!r}.")
        if self.max_performance_drop is not None and self.max_performance_drop < 0:
            raise ValueError(f"Drift policy max_performance_drop must be >= 0, got {self.max_performance_drop!r}.")
        if self.performance_metric is not None and self.performance_metric not in METRICS:
            raise ValueError(
                f"Drift policy performance_metric={self.performance_metric!r}; use one of {', '.join(METRICS)} "
                "(or leave it out for the model's task's metric)."
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DriftPolicy:
        """Build from a mapping; unknown keys are an error so typos do not silently disable a rule."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"Unknown drift policy keys {unknown}; known keys: {sorted(cls.__dataclass_fields__)}.")
        if "critical_features" in data:
            data["critical_features"] = tuple(data["critical_features"] or ())
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        out = asdict(self)
        out["critical_features"] = list(self.critical_features)
        return out

    def evaluate(
        self,
        *,
        drift_share: float,
        drifted_features: list[str],
        performance_drop: float | None = None,
        prediction_drifted: bool | None = None,
        performance_metric: str | None = None,
    ) -> list[str]:
        """Return the reasons the verdict exceeds the policy (empty: it does not).

        ``performance_metric`` names the metric the drop was measured in (the task's default when the policy
        names none).
        """
        reasons = []
        if drift_share >= self.drift_share:
            reasons.append(f"share of drifted features {drift_share:.2f} >= {self.drift_share:.2f}")
        critical = [f for f in self.critical_features if f in drifted_features]
        if critical:
            reasons.append(f"critical features drifted: {', '.join(critical)}")
        if self.max_performance_drop is not None and performance_drop is not None:
            if performance_drop > self.max_performance_drop:
                reasons.append(
                    f"{performance_metric or self.performance_metric or 'performance'} dropped by "
                    f"{performance_drop:.4f} > {self.max_performance_drop:.4f}"
                )
        if self.prediction_drift_triggers and prediction_drifted:
            reasons.append("model predictions drifted")
        return reasons
