"""The pure parts of leader election: reading a Lease and judging its expiry."""

import asyncio
from datetime import datetime, timezone

import pytest

from dataset_operator.leader import (
    LeaderElector,
    LeadershipLost,
    LeaseView,
    expired,
    seconds_until_expiry,
    view_of,
)

RENEWED = datetime(2025, 6, 1, 10, 0, 0, 500000, tzinfo=timezone.utc).timestamp()


def lease(renew_time: object = "2025-06-01T10:00:00.500000Z", holder: str | None = "op-1", **spec) -> dict:
    return {"metadata": {"resourceVersion": "41"},
            "spec": {"holderIdentity": holder, "renewTime": renew_time, "leaseDurationSeconds": 15,
                     "leaseTransitions": 4} | spec}


def test_view_of_reads_holder_renewal_duration_epoch_and_version():
    assert view_of(lease()) == LeaseView(holder="op-1", renewed_at=RENEWED, duration=15.0, transitions=4,
                                         resource_version="41")


def test_view_of_accepts_datetimes_and_offsets():
    as_datetime = datetime.fromtimestamp(RENEWED, tz=timezone.utc)
    assert view_of(lease(as_datetime)).renewed_at == RENEWED
    assert view_of(lease("2025-06-01T12:00:00.500000+02:00")).renewed_at == RENEWED


def test_view_of_an_empty_lease_has_no_holder_and_epoch_zero():
    view = view_of({"metadata": {}, "spec": {}})
    assert (view.holder, view.renewed_at, view.duration, view.transitions) == (None, None, 15.0, 0)
    assert expired(view, RENEWED)


def test_lease_is_held_until_renewal_plus_duration():
    view = view_of(lease())
    assert not expired(view, RENEWED + 14.9)
    assert expired(view, RENEWED + 15.0)


def test_released_lease_without_holder_is_expired_at_once():
    assert expired(view_of(lease(holder=None)), RENEWED)


def test_seconds_until_expiry_counts_down_to_zero():
    view = view_of(lease())
    assert seconds_until_expiry(view, RENEWED + 5) == 10.0
    assert seconds_until_expiry(view, RENEWED + 20) == 0.0


class HangingLeaseAPI:
    """A coordination API whose reads answer and whose renewals never return (an API server that
    accepted the connection and went silent)."""

    def __init__(self, holder: str) -> None:
        self.holder = holder

    async def read_namespaced_lease(self, name, namespace):
        return lease(holder=self.holder)

    async def replace_namespaced_lease(self, name, namespace, body):
        await asyncio.Event().wait()


class Serializer:
    @staticmethod
    def sanitize_for_serialization(value):
        return value


def elector_on(api) -> LeaderElector:
    elector = LeaderElector(Serializer(), "ns", "lease", "op-1", duration=15.0, renew_deadline=0.2, retry=0.05)
    elector.coordination, elector.is_leader = api, True
    return elector


def test_a_renewal_that_hangs_loses_the_lead_at_the_renew_deadline():
    elector = elector_on(HangingLeaseAPI("op-1"))

    async def hold() -> None:  # the outer timeout only keeps a regression from hanging the suite
        await asyncio.wait_for(elector.hold(), timeout=30)

    with pytest.raises(LeadershipLost, match="no renewal"):
        asyncio.run(hold())
    assert not elector.is_leader


def test_another_holder_ends_the_lead_at_once():
    elector = elector_on(HangingLeaseAPI("op-2"))
    with pytest.raises(LeadershipLost, match="another identity"):
        asyncio.run(asyncio.wait_for(elector.hold(), timeout=30))
