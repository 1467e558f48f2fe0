"""FairQueue: round-robin across submitters, oldest approval first within one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syft_runner.scheduler import FairQueue, QueuedJob

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _job(name: str, submitter: str, minute: int) -> QueuedJob:
    return QueuedJob(T0 + timedelta(minutes=minute), name, submitter)


def _drain(queue: FairQueue) -> list[str]:
    order = []
    while (item := queue.pop()) is not None:
        order.append(item.key)
    return order


def test_round_robin_across_submitters_oldest_first_within() -> None:
    queue = FairQueue()
    for item in [
        _job("a1", "a", 1),
        _job("a2", "a", 2),
        _job("a3", "a", 3),
        _job("b1", "b", 4),
        _job("c1", "c", 5),
        _job("b2", "b", 6),
    ]:
        queue.push(item)
    assert _drain(queue) == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_oldest_approval_first_even_if_queued_later() -> None:
    queue = FairQueue()
    queue.push(_job("late", "a", 9))
    queue.push(_job("early", "a", 1))
    assert _drain(queue) == ["early", "late"]


def test_duplicates_are_ignored_and_membership_is_tracked() -> None:
    queue = FairQueue()
    assert queue.push(_job("x", "a", 1))
    assert not queue.push(_job("x", "a", 2))
    assert "x" in queue and len(queue) == 1
    assert queue.pop() is not None
    assert "x" not in queue and len(queue) == 0 and queue.pop() is None


def test_a_submitter_that_empties_rejoins_at_the_end() -> None:
    queue = FairQueue()
    queue.push(_job("a1", "a", 1))
    queue.push(_job("b1", "b", 2))
    queue.push(_job("b2", "b", 3))
    assert queue.pop().key == "a1"  # type: ignore[union-attr]
    queue.push(_job("a2", "a", 4))
    assert _drain(queue) == ["b1", "a2", "b2"]
