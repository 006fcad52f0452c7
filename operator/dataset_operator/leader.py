"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection does it, plus an
epoch (the Lease's leaseTransitions) that the Redis claim script uses as a fencing token.

A standby polls every retry period and wakes exactly when the holder's lease runs out, so a
SIGKILLed leader is replaced within the lease duration. Expiry is judged from the Lease's
renewTime against this process's clock: nodes are assumed NTP-synchronised (as on AKS).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)


class LeadershipLost(RuntimeError):
    """No renewal succeeded within the renew deadline: another process may lead now."""


@dataclass(frozen=True)
class LeaseView:
    holder: str | None
    renewed_at: float | None
    duration: float
    transitions: int
    resource_version: str | None


def expired(view: LeaseView, now: float) -> bool:
    return not view.holder or view.renewed_at is None or now >= view.renewed_at + view.duration


def seconds_until_expiry(view: LeaseView, now: float) -> float:
    if expired(view, now):
        return 0.0
    return (view.renewed_at or now) + view.duration - now


def _micro_time(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=timezone.utc)


def _parse_time(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def view_of(lease: dict) -> LeaseView:
    spec = lease.get("spec") or {}
    return LeaseView(
        holder=spec.get("holderIdentity"),
        renewed_at=_parse_time(spec.get("renewTime")),
        duration=float(spec.get("leaseDurationSeconds") or 15),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
    )


class LeaderElector:
    def __init__(self, api: client.ApiClient, namespace: str, name: str, identity: str,
                 duration: float = 15.0, renew_deadline: float = 10.0, retry: float = 2.0) -> None:
        self.coordination = client.CoordinationV1Api(api)
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.retry = retry
        self.epoch = 0
        self.is_leader = False

    async def _read(self) -> dict | None:
        try:
            lease = await self.coordination.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self.api.sanitize_for_serialization(lease)

    def _body(self, transitions: int, acquired_at: float, resource_version: str | None) -> dict:
        now = _micro_time(time.time())
        metadata = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.duration),
                "acquireTime": _micro_time(acquired_at).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "renewTime": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "leaseTransitions": transitions,
            },
        }

    async def try_acquire(self) -> tuple[bool, LeaseView | None]:
        """One attempt. Returns (leader now, the lease as seen)."""
        lease = await self._read()
        now = time.time()
        try:
            if lease is None:
                await self.coordination.create_namespaced_lease(self.namespace, self._body(1, now, None))
                self.epoch = 1
                return True, None
            view = view_of(lease)
            if view.holder == self.identity or expired(view, now):
                # Every term gets a new epoch, a restarted process of the same identity's too: its
                # predecessor may still be alive somewhere, and the fence must tell the two apart.
                transitions = view.transitions + 1
                await self.coordination.replace_namespaced_lease(
                    self.name, self.namespace, self._body(transitions, now, view.resource_version))
                self.epoch = transitions
                return True, view
            return False, view
        except ApiException as exc:
            if exc.status in (409, 422):  # somebody else wrote first
                return False, None
            raise

    async def acquire(self) -> int:
        """Blocks until this process leads; returns its epoch."""
        while True:
            try:
                leader, view = await self.try_acquire()
            except ApiException as exc:
                log.warning("lease %s/%s not readable: %s", self.namespace, self.name, exc.reason)
                leader, view = False, None
            if leader:
                self.is_leader = True
                log.info("became leader", extra={"fields": {"identity": self.identity, "epoch": self.epoch}})
                return self.epoch
            wait = self.retry
            if view is not None:
                wait = min(self.retry, max(seconds_until_expiry(view, time.time()), 0.05))
            await asyncio.sleep(wait)

    async def hold(self) -> None:
        """Renews every retry period; raises LeadershipLost when no renewal has succeeded for the renew
        deadline (a renewal that hangs is cut off at the deadline, which is shorter than the lease, so
        this leader stops before another can start), or when another identity holds the lease."""
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(self.retry)
            left = self.renew_deadline - (time.monotonic() - last_renewal)
            try:
                await asyncio.wait_for(self._renew(), timeout=max(left, 0.001))
                last_renewal = time.monotonic()
            except LeadershipLost:
                self.is_leader = False
                raise
            except Exception as exc:  # asyncio.TimeoutError included: a hung call counts as failed
                log.warning("lease renewal failed: %s", exc or type(exc).__name__)
                if time.monotonic() - last_renewal >= self.renew_deadline:
                    self.is_leader = False
                    raise LeadershipLost(f"no renewal for {self.renew_deadline:.0f}s") from exc

    async def _renew(self) -> None:
        lease = await self._read()
        if lease is None or view_of(lease).holder != self.identity:
            raise LeadershipLost("the lease is held by another identity")
        view = view_of(lease)
        body = self._body(view.transitions, time.time(), view.resource_version)
        body["spec"]["acquireTime"] = (lease.get("spec") or {}).get("acquireTime") or body["spec"]["acquireTime"]
        await self.coordination.replace_namespaced_lease(self.name, self.namespace, body)

    async def release(self) -> None:
        """On a clean shutdown, hand over at once instead of making the standby wait out the lease."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            lease = await self._read()
            if lease is None or view_of(lease).holder != self.identity:
                return
            view = view_of(lease)
            body = self._body(view.transitions, time.time(), view.resource_version)
            body["spec"]["holderIdentity"] = None
            body["spec"]["leaseDurationSeconds"] = 1
            await self.coordination.replace_namespaced_lease(self.name, self.namespace, body)
        except Exception as exc:
            log.warning("lease not released: %s", exc)
