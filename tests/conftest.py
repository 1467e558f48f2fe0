from __future__ import annotations

import os

import pytest
from _pytest.mark.expression import Expression

from tests import fuzzing

pytest_plugins = [
    "tests.fixtures_docker",
    "tests.fixtures_runner",
    "tests.fixtures_envs",
    "tests.fixtures_s3",
    "tests.fixtures_sync",
]


def pytest_configure(config: pytest.Config) -> None:
    """The fuzzing tier (tests/fuzzing.py): FUZZ_TIER if set, else `slow` exactly when the `-m`
    selection keeps tests marked slow (CI and `make test-all`), `fast` under `make test`."""
    fuzzing.set_tier(os.environ.get("FUZZ_TIER") or _tier_for(config.getoption("markexpr")))


def _tier_for(markexpr: str) -> str:
    if not markexpr:
        return "slow"
    return "slow" if Expression.compile(markexpr).evaluate(_slow_test) else "fast"


def _slow_test(name: str, /, **kwargs: str | int | bool | None) -> bool:
    """The marks of a slow docker test, for evaluating a `-m` expression."""
    return name in ("slow", "docker")


def pytest_report_header(config: pytest.Config) -> str:
    examples = sum(fuzzing.COUNTS[fuzzing.tier()].values())
    return f"fuzzing tier: {fuzzing.tier()} ({examples} examples over all properties)"
