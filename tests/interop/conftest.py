"""Fixtures for round trips with OpenMined's real Syft clients (see clients.py).

The stacks are session-scoped: their venvs are built once (cached across runs) and each
keeps one driver process for the whole session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.clients import SyftStack


@pytest.fixture(scope="session")
def syft_p0() -> Iterator[SyftStack]:
    """syft-client 0.1.117: protocol 0 (flat `JOB/`)."""
    stack = SyftStack.p0()
    yield stack
    stack.close()


@pytest.fixture(scope="session")
def syft_p1() -> Iterator[SyftStack]:
    """syft 0.10.0 + syft-rds 0.6.1: protocol 1 (`v1/JOB/`)."""
    stack = SyftStack.p1()
    yield stack
    stack.close()


@pytest.fixture(params=["p0", "p1"])
def syft_stack(request: pytest.FixtureRequest) -> SyftStack:
    """Each protocol in turn, for tests that must hold for both."""
    stack: SyftStack = request.getfixturevalue(f"syft_{request.param}")
    return stack
