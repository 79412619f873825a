"""``serving.live_analysis``: on by default in the generated DAGs, falling back to the probes on too little traffic."""

from __future__ import annotations

import pytest

from mlops_provider.exceptions import ModelSpecError
from mlops_provider.spec.load import parse_spec
from tests.conftest import REPO_ROOT

SOURCE = "include/models/refunds.yaml"


def _with_live(spec_dict: dict, live) -> dict:
    return {**spec_dict, "serving": {**spec_dict.get("serving", {}), "live_analysis": live}}


def test_live_analysis_is_on_by_default_and_reaches_the_deploy_task(spec_dict):
    from mlops_provider.serving.live_analysis import LiveAnalysisConfig
    from mlops_provider.spec.dags import build_dags

    spec = parse_spec(spec_dict, SOURCE, REPO_ROOT)
    options = spec.serving.live_analysis.operator_options
    assert options == {"min_requests": 50, "on_inconclusive": "probes", "inconclusive_wait": 300.0}
    deploy = build_dags(spec)["refunds__training"].get_task("deploy")
    assert deploy.live_analysis == options
    config = deploy._live_analysis_config()
    assert isinstance(config, LiveAnalysisConfig) and config.on_inconclusive == "probes"
    assert config.inconclusive_wait == 300.0


def test_live_analysis_can_be_switched_off_or_made_strict(spec_dict):
    from mlops_provider.spec.dags import build_dags

    off = parse_spec(_with_live(spec_dict, {"enabled": False}), SOURCE, REPO_ROOT)
    assert build_dags(off)["refunds__training"].get_task("deploy").live_analysis is None
    strict = parse_spec(
        _with_live(spec_dict, {"min_requests": 500, "on_inconclusive": "rollback", "inconclusive_wait": "20m"}),
        SOURCE,
        REPO_ROOT,
    )
    assert strict.serving.live_analysis.operator_options == {
        "min_requests": 500,
        "on_inconclusive": "rollback",
        "inconclusive_wait": 1200.0,
    }


@pytest.mark.parametrize(
    ("live", "message"),
    [
        ({"on_inconclusive": "promote"}, "serving.live_analysis.on_inconclusive: expected one of rollback, probes"),
        ({"min_requests": 0}, "serving.live_analysis.min_requests"),
        ({"inconclusive_wait": 60}, "serving.live_analysis.inconclusive_wait: expected a duration like 7d"),
        ({"threshold": 1}, "serving.live_analysis.threshold: unknown key"),
    ],
)
def test_bad_live_analysis_names_the_key(spec_dict, live, message):
    with pytest.raises(ModelSpecError, match=message):
        parse_spec(_with_live(spec_dict, live), SOURCE, REPO_ROOT)
