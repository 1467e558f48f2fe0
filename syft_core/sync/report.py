"""What one sync pass did, for the CLI and for tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from syft_core.sync.messages import Rejection


@dataclass(frozen=True)
class Applied:
    peer: str  # who sent the change
    path: str  # relative to the datasite it was applied to
    deleted: bool = False


@dataclass(frozen=True)
class Notice:
    peer: str  # the other party: the sender I refused, or the owner who refused me
    rejection: Rejection


@dataclass
class SyncReport:
    applied: list[Applied] = field(default_factory=list)  # peers' changes to my datasite
    received: list[Applied] = field(default_factory=list)  # owners' changes to my copies
    rejected: list[Notice] = field(default_factory=list)  # proposals I refused
    notices: list[Notice] = field(default_factory=list)  # my proposals an owner refused
    proposed: dict[str, int] = field(default_factory=dict)  # owner -> changes I sent them
    published: dict[str, int] = field(default_factory=dict)  # peer -> changes I sent them
    held: list[str] = field(default_factory=list)  # "<sender>/<id>" from unaccepted senders
    problems: list[str] = field(default_factory=list)  # retried next sync

    @property
    def quiet(self) -> bool:
        return not (
            self.applied
            or self.received
            or self.rejected
            or self.notices
            or self.proposed
            or self.published
            or self.held
            or self.problems
        )
