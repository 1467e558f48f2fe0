"""The fair queue of approved jobs waiting for a free slot.

Round-robin across submitters, oldest approval first within one submitter: a submitter with a
hundred approved jobs queued delays another submitter's single job by at most one job.
A submitter who runs out of queued jobs leaves the rotation and rejoins at its end.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, order=True)
class QueuedJob:
    approved_at: datetime
    key: str  # the job folder path: unique, and a stable tie-break between equal times
    submitter: str = field(compare=False)


class FairQueue:
    def __init__(self) -> None:
        self._waiting: dict[str, list[QueuedJob]] = {}
        self._turns: deque[str] = deque()
        self._keys: set[str] = set()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def push(self, job: QueuedJob) -> bool:
        """Queue `job`; False if a job with the same key is already queued."""
        if job.key in self._keys:
            return False
        self._keys.add(job.key)
        if job.submitter not in self._waiting:
            self._waiting[job.submitter] = []
            self._turns.append(job.submitter)
        heapq.heappush(self._waiting[job.submitter], job)
        return True

    def pop(self) -> QueuedJob | None:
        """The next job: the oldest of the submitter whose turn it is."""
        if not self._turns:
            return None
        submitter = self._turns.popleft()
        waiting = self._waiting[submitter]
        job = heapq.heappop(waiting)
        if waiting:
            self._turns.append(submitter)
        else:
            del self._waiting[submitter]
        self._keys.discard(job.key)
        return job
