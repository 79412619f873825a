"""Promotion in the registry: a lock held from the gate to the end of the deploy, and compare-and-set on ``champion``.

MLflow has no atomic compare-and-set on aliases or tags, so the lock is built from what it has, in the manner of
a two-phase claim: each contender writes its own registered-model tag (``mlops.promotion_lock.<hash of owner>``)
and then reads every lock tag back. It holds the lock only when no other unexpired claim is there; otherwise it
withdraws its claim and backs off. Because the registry orders writes, two claims can never both read back alone
(invariant I6: two runs racing for the same model never both promote); when they collide both withdraw, and a
randomised back-off lets one of them win the next round. The loser fails with
:class:`~mlops_provider.exceptions.PromotionConflictError` naming the holder.

On top of the lock, :meth:`Promotion.check_champion` compares ``champion`` with the version the gate compared the
candidate against, before the endpoint is touched and again just before ``champion`` moves. :meth:`Promotion.promote`
moves ``champion`` only for a version whose passed analysis the rollout recorded (invariant I1), and every outcome
is tagged on the version (``mlops.rollout.status``/``reason``/``message``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import PromotionConflictError, UnverifiedPromotionError
from mlops_provider.lineage import (
    CHALLENGER,
    CHAMPION,
    PROMOTION_LOCK_TAG_PREFIX,
    ROLLOUT_MESSAGE_TAG,
    ROLLOUT_REASON_TAG,
    ROLLOUT_STATUS_TAG,
    ROLLOUT_UPDATED_AT_TAG,
)

if TYPE_CHECKING:
    from mlops_provider.hooks.mlflow import MlflowHook

log = logging.getLogger(__name__)

#: Marker for "the caller did not say which champion the gate compared against" (no compare-and-set).
UNKNOWN = object()


class PromotionLock:
    """A registry-held lock on promoting ``model_name``, owned by ``owner`` (``<dag_id>/<run_id>``).

    :param hook: the MLflow hook.
    :param model_name: registered model name.
    :param owner: who holds the lock; the same owner may take it again (a retry, the deploy after the gate).
    :param ttl: seconds a claim stays valid: a run that died holding the lock blocks others at most this long.
    :param attempts: claim rounds before giving up when claims collide.
    :param backoff: largest random pause between rounds, in seconds (times the round number).
    """

    def __init__(
        self,
        hook: MlflowHook,
        model_name: str,
        owner: str,
        *,
        ttl: float = 7200.0,
        attempts: int = 6,
        backoff: float = 0.3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hook = hook
        self.model_name = model_name
        self.owner = owner
        self.ttl = ttl
        self.attempts = attempts
        self.backoff = backoff
        self.clock = clock
        self.key = PROMOTION_LOCK_TAG_PREFIX + hashlib.sha256(owner.encode()).hexdigest()[:16]

    def claims(self) -> dict[str, dict[str, Any]]:
        """Return the unexpired claims on the lock, by tag key."""
        now = self.clock()
        live = {}
        for key, value in self.hook.registered_model_tags(self.model_name).items():
            if not key.startswith(PROMOTION_LOCK_TAG_PREFIX):
                continue
            try:
                claim = json.loads(value)
                if float(claim["expires_at"]) > now:
                    live[key] = claim
            except (ValueError, KeyError, TypeError):
                continue  # unreadable claims hold nothing
        return live

    def _others(self, settle: bool = False) -> dict[str, dict[str, Any]]:
        others = {k: c for k, c in self.claims().items() if k != self.key}
        if others and settle:
            # A claim may be one being withdrawn after a collision: look again once it had time to go.
            time.sleep(self.backoff)
            others = {k: c for k, c in self.claims().items() if k != self.key}
        return others

    def _conflict(self, others: dict[str, dict[str, Any]]) -> PromotionConflictError:
        holder = str(next(iter(others.values())).get("owner"))
        return PromotionConflictError(
            f"Another run is promoting {self.model_name}: the promotion lock is held by {holder} (this run: "
            f"{self.owner}). Only one run may move challenger/champion at a time; this run does not promote. "
            "Re-run it after the other run finished to compare against the new champion.",
            holder=holder,
        )

    def acquire(self) -> None:
        """Take the lock (or renew it when this owner holds it); raise PromotionConflictError when another does."""
        for attempt in range(1, self.attempts + 1):
            others = self._others(settle=True)
            if others:
                raise self._conflict(others)
            claim = {"owner": self.owner, "expires_at": self.clock() + self.ttl}
            self.hook.set_registered_model_tag(self.model_name, self.key, json.dumps(claim, sort_keys=True))
            others = self._others()
            if not others:
                log.info("Promotion lock on %s held by %s.", self.model_name, self.owner)
                return
            # Claims collided: withdraw and let the randomised back-off decide the next round.
            self.hook.delete_registered_model_tag(self.model_name, self.key)
            time.sleep(random.uniform(0, self.backoff * attempt))  # noqa: S311 -- jitter, not security
        others = self._others(settle=True)
        if others:
            raise self._conflict(others)
        raise PromotionConflictError(
            f"Could not take the promotion lock on {self.model_name} in {self.attempts} rounds: other runs kept "
            "claiming it at the same time."
        )

    def held(self) -> bool:
        """Whether this owner holds an unexpired claim and nobody else does."""
        claims = self.claims()
        return self.key in claims and len(claims) == 1

    def release(self) -> None:
        """Withdraw this owner's claim (never another's)."""
        self.hook.delete_registered_model_tag(self.model_name, self.key)
        log.info("Promotion lock on %s released by %s.", self.model_name, self.owner)


class Promotion:
    """One version's way from the gate's decision to ``champion``: lock, compare-and-set, outcome tags.

    :param hook: the MLflow hook.
    :param model_name: registered model name.
    :param version: the candidate version.
    :param owner: the run promoting it (``<dag_id>/<run_id>``).
    :param expected_champion: the champion version the gate compared the candidate against (None: there was no
        champion); :data:`UNKNOWN` skips the compare-and-set (a deploy without a gate).
    :param lock_ttl: seconds the promotion lock stays valid.
    """

    def __init__(
        self,
        hook: MlflowHook,
        model_name: str,
        version: str,
        owner: str,
        *,
        expected_champion: Any = UNKNOWN,
        lock_ttl: float = 7200.0,
    ) -> None:
        self.hook = hook
        self.model_name = model_name
        self.version = str(version)
        self.owner = owner
        self.expected_champion = expected_champion
        self.lock = PromotionLock(hook, model_name, owner, ttl=lock_ttl)

    def current_champion(self) -> str | None:
        """The version ``champion`` names now (None: no champion)."""
        found = self.hook.get_version_by_alias(self.model_name, CHAMPION)
        return str(found.version) if found is not None else None

    def check_champion(self) -> None:
        """Raise PromotionConflictError when ``champion`` is no longer the version the gate compared against."""
        if self.expected_champion is UNKNOWN:
            return
        expected = None if self.expected_champion in (None, "") else str(self.expected_champion)
        actual = self.current_champion()
        if actual != expected:
            raise PromotionConflictError(
                f"champion of {self.model_name} changed since the gate compared candidate version {self.version} "
                f"against it: the gate saw {expected or 'no champion'}, the registry now says {actual or 'none'}. "
                f"Version {self.version} is not promoted; re-run the gate to compare it with version {actual}.",
                expected=expected,
                actual=actual,
            )

    def begin(self) -> None:
        """Take the lock and check ``champion`` before anything changes (the gate, then the deploy)."""
        self.lock.acquire()
        try:
            self.check_champion()
        except PromotionConflictError:
            self.lock.release()
            raise

    def record(self, status: str, reason: str | None = None, message: str | None = None) -> None:
        """Tag the version with the rollout's outcome."""
        tags = {
            ROLLOUT_STATUS_TAG: status,
            ROLLOUT_REASON_TAG: reason or "",
            ROLLOUT_MESSAGE_TAG: (message or "")[:4900],
            ROLLOUT_UPDATED_AT_TAG: datetime.now(UTC).isoformat(),
        }
        self.hook.set_version_tags(self.model_name, self.version, tags)

    def promote(self, *, verified: bool) -> None:
        """Move ``champion`` to the version: only after a passed analysis of it, and only if nobody else moved it."""
        try:
            if not verified:
                raise UnverifiedPromotionError(
                    f"Refusing to move champion of {self.model_name} to version {self.version}: the endpoint's "
                    "rollout state records no passed analysis of that version."
                )
            self.begin()  # still ours, and champion is still what the gate compared against
            self.hook.set_alias(self.model_name, CHAMPION, self.version)
            self.record("promoted", "Passed")
            challenger = self.hook.get_version_by_alias(self.model_name, CHALLENGER)
            if challenger is not None and str(challenger.version) == self.version:
                self.hook.delete_alias(self.model_name, CHALLENGER)
        except Exception as exc:
            self.failed("failed", getattr(exc, "reason", None) or type(exc).__name__, str(exc), final=True)
            raise
        self.lock.release()

    def failed(self, status: str, reason: str | None, message: str | None, *, final: bool) -> None:
        """Record a failed, rolled-back or killed rollout; when ``final``, drop ``challenger`` from the version.

        The lock is released in every case (a retry takes it again).
        """
        try:
            self.record(status, reason, message)
            if final:
                challenger = self.hook.get_version_by_alias(self.model_name, CHALLENGER)
                if challenger is not None and str(challenger.version) == self.version:
                    self.hook.delete_alias(self.model_name, CHALLENGER)
        except Exception as exc:  # recording must never hide the failure being recorded
            log.warning("Could not record the %s rollout of %s v%s: %s", status, self.model_name, self.version, exc)
        finally:
            self.lock.release()
