"""Promotion against the real MLflow server: the registry-held lock, compare-and-set on champion, outcome tags."""

from __future__ import annotations

import threading
import uuid

import pytest

from mlops_provider.exceptions import PromotionConflictError, UnverifiedPromotionError
from mlops_provider.lineage import (
    CHALLENGER,
    CHAMPION,
    PROMOTION_LOCK_TAG_PREFIX,
    ROLLOUT_REASON_TAG,
    ROLLOUT_STATUS_TAG,
)
from mlops_provider.serving.promotion import Promotion

pytestmark = pytest.mark.integration


@pytest.fixture
def model(mlflow_connection):
    """A registered model with versions 1, 2 and 3 (tiny artifacts) and champion on version 1."""
    from mlflow import MlflowClient

    from mlops_provider.hooks.mlflow import MlflowHook

    client = MlflowClient(tracking_uri=mlflow_connection.url)
    name = f"promotion_{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    for _ in range(3):  # the registry does not read the source: no artifacts needed for alias and tag tests
        client.create_model_version(name, f"s3://unused-bucket/{name}/model")
    client.set_registered_model_alias(name, CHAMPION, "1")
    return name, client, MlflowHook()


def _lock_tags(client, name) -> dict:
    return {k: v for k, v in client.get_registered_model(name).tags.items() if k.startswith(PROMOTION_LOCK_TAG_PREFIX)}


def test_two_runs_racing_for_the_same_model_never_both_promote(model):
    """I6: two runs pass the gate at the same moment; exactly one takes the lock and promotes, the other fails."""
    name, client, hook = model
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def run(owner: str, version: str) -> None:
        promotion = Promotion(hook, name, version, owner, expected_champion="1")
        barrier.wait()
        try:
            promotion.begin()  # the gate
            client.set_registered_model_alias(name, CHALLENGER, version)
            promotion.promote(verified=True)  # the deploy, after a passed analysis
            outcomes[owner] = "promoted"
        except PromotionConflictError as exc:
            outcomes[owner] = exc

    threads = [threading.Thread(target=run, args=(f"train/run-{v}", v)) for v in ("2", "3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [owner for owner, outcome in outcomes.items() if outcome == "promoted"]
    losers = [outcome for outcome in outcomes.values() if isinstance(outcome, PromotionConflictError)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    winner_version = winners[0].rsplit("-", 1)[-1]
    assert client.get_model_version_by_alias(name, CHAMPION).version == winner_version
    message = str(losers[0])
    # The loser names what beat it: the lock holder, or the champion that moved under it.
    assert winners[0] in message or f"registry now says {winner_version}" in message
    assert _lock_tags(client, name) == {}  # both released


def test_deploy_fails_when_champion_moved_since_the_gate(model):
    name, client, hook = model
    promotion = Promotion(hook, name, "3", "train/a", expected_champion="1")
    promotion.begin()
    client.set_registered_model_alias(name, CHALLENGER, "3")
    client.set_registered_model_alias(name, CHAMPION, "2")  # another promotion (e.g. by hand) in between
    with pytest.raises(PromotionConflictError, match="the gate saw 1, the registry now says 2") as err:
        promotion.promote(verified=True)
    assert (err.value.expected, err.value.actual) == ("1", "2")
    assert client.get_model_version_by_alias(name, CHAMPION).version == "2"
    tags = client.get_model_version(name, "3").tags
    assert tags[ROLLOUT_STATUS_TAG] == "failed"
    with pytest.raises(Exception, match="alias"):  # challenger no longer names the version that failed
        client.get_model_version_by_alias(name, CHALLENGER)
    assert _lock_tags(client, name) == {}


def test_lock_held_by_another_run_blocks_and_expires(model):
    name, client, hook = model
    Promotion(hook, name, "2", "train/holder", expected_champion="1", lock_ttl=3600).begin()
    with pytest.raises(PromotionConflictError, match="held by train/holder") as err:
        Promotion(hook, name, "3", "train/other", expected_champion="1").begin()
    assert err.value.holder == "train/holder"
    holder = Promotion(hook, name, "2", "train/holder", expected_champion="1")
    holder.begin()  # the same run (the deploy after its gate, or a retry) takes it again
    holder.lock.release()
    # A claim past its expiry (a run that died holding the lock) holds nothing.
    dead = Promotion(hook, name, "2", "train/dead").lock
    client.set_registered_model_tag(name, dead.key, '{"owner": "train/dead", "expires_at": 0}')
    other = Promotion(hook, name, "3", "train/other", expected_champion="1")
    other.begin()
    assert other.lock.held()  # the expired claim's tag is still there, but it holds nothing
    assert set(other.lock.claims()) == {other.lock.key}


def test_unverified_or_rolled_back_versions_never_become_champion(model):
    name, client, hook = model
    client.set_registered_model_alias(name, CHALLENGER, "2")
    promotion = Promotion(hook, name, "2", "train/a", expected_champion="1")
    promotion.begin()
    with pytest.raises(UnverifiedPromotionError):
        promotion.promote(verified=False)
    assert client.get_model_version_by_alias(name, CHAMPION).version == "1"
    tags = client.get_model_version(name, "2").tags
    assert tags[ROLLOUT_STATUS_TAG] == "failed" and tags[ROLLOUT_REASON_TAG] == "UnverifiedPromotionError"

    client.set_registered_model_alias(name, CHALLENGER, "3")
    rolled = Promotion(hook, name, "3", "train/b", expected_champion="1")
    rolled.begin()
    rolled.failed("rolled_back", "AnalysisFailed", "p99 too high", final=True)
    tags = client.get_model_version(name, "3").tags
    assert (tags[ROLLOUT_STATUS_TAG], tags[ROLLOUT_REASON_TAG]) == ("rolled_back", "AnalysisFailed")
    with pytest.raises(Exception, match="alias"):
        client.get_model_version_by_alias(name, CHALLENGER)
    assert _lock_tags(client, name) == {}
