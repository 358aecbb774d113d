"""Leader election with a ``coordination.k8s.io`` Lease, shared by the watcher and the beat runner.

Any number of replicas may run; the one holding the Lease acts, the others wait and take over once
it is released (clean exit) or expired (``LEASE_DURATION_SECONDS`` without renewal).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from infrastructure import gateway as gw

log = logging.getLogger(__name__)

LEASE_DURATION_SECONDS = 15
RENEW_EVERY_SECONDS = 5.0


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time from the API, or None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def micro_time(when: datetime) -> str:
    """The ``MicroTime`` format a Lease's times use."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElection:
    """Hold a Lease; ``try_acquire`` takes a free or expired lease or renews our own."""

    def __init__(self, gateway: gw.Gateway, namespace: str, identity: str, name: str) -> None:
        self.gateway = gateway
        self.namespace = namespace
        self.identity = identity
        self.name = name

    def try_acquire(self) -> bool:
        now = datetime.now(UTC)
        lease = self.gateway.get_or_none("Lease", self.namespace, self.name)
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": micro_time(now),
        }
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**spec, "acquireTime": micro_time(now), "leaseTransitions": 0},
            }
            try:
                self.gateway.create(body)
            except gw.NotFound:
                self.gateway.ensure_namespace(self.namespace)
                return False
            except gw.AlreadyExists:
                return False
            return True
        current = lease.get("spec") or {}
        holder = current.get("holderIdentity")
        renewed = parse_time(current.get("renewTime")) or datetime.min.replace(tzinfo=UTC)
        duration = current.get("leaseDurationSeconds") or LEASE_DURATION_SECONDS
        if holder and holder != self.identity and renewed + timedelta(seconds=duration) > now:
            return False
        if holder != self.identity:
            spec["acquireTime"] = micro_time(now)
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        lease["spec"] = {**current, **spec}
        try:
            self.gateway.replace(lease)
        except gw.Conflict:
            return False
        return True

    def release(self) -> None:
        """Give the lease up on a clean exit, so a standby takes over at once."""
        lease = self.gateway.get_or_none("Lease", self.namespace, self.name)
        if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
            lease["spec"]["holderIdentity"] = None
            lease["spec"]["renewTime"] = None
            try:
                self.gateway.replace(lease)
            except gw.GatewayError:
                log.info("could not release the lease; it expires by itself")

    def run(
        self,
        stop: threading.Event,
        *,
        start: Callable[[], None],
        halt: Callable[[], None],
        alive: Callable[[], bool] = lambda: True,
        tick: Callable[[], None] = lambda: None,
        renew_every: float = RENEW_EVERY_SECONDS,
    ) -> None:
        """Until ``stop``: ``start()`` the singleton work on winning the lease, ``halt()`` it when the
        lease is lost (or not renewed for a lease duration while the API is away) and on exit.

        Work that ends by itself (``alive()`` false) is halted and started again while we lead.
        ``tick()`` runs every round, leader or standby (a liveness heartbeat).
        """
        leading = False
        renewed = 0.0
        try:
            while not stop.is_set():
                tick()
                try:
                    held = self.try_acquire()
                except gw.GatewayError as exc:
                    log.warning("lease %s: election failed: %s", self.name, exc.message)
                    held = leading and time.monotonic() - renewed < LEASE_DURATION_SECONDS
                else:
                    renewed = time.monotonic() if held else renewed
                if leading and (not held or not alive()):
                    log.warning("lease %s: %s stops leading", self.name, self.identity)
                    halt()
                    leading = False
                if held and not leading and not stop.is_set():
                    log.info("lease %s: %s is the leader", self.name, self.identity)
                    start()
                    leading = True
                stop.wait(renew_every)
        finally:
            if leading:
                halt()
            try:
                self.release()
            except gw.GatewayError:
                log.info("lease %s not released (API unavailable)", self.name)
