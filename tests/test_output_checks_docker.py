"""Output checking through the real runner: a job on real data in Docker, its outputs checked at
`done`, and a policy releasing only the job whose tables pass every rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from syft_core.datasite import Datasite
from syft_core.jobs import Outcome
from syft_core.output_checks import read_checks
from syft_core.policies import policies_dir
from syft_core.release import results_waiting
from tests.fixtures_runner import (
    OWNER,
    SCIENTIST,
    StartRunner,
    approve,
    wait_done,
    wait_for,
    write_job,
)

pytestmark = pytest.mark.docker


def test_the_runner_checks_outputs_and_a_policy_releases_only_what_passes(
    syftbox: Path, start_runner: StartRunner
) -> None:
    policies = policies_dir(Datasite(syftbox, OWNER))
    policies.mkdir(parents=True, exist_ok=True)
    policy = {
        "name": "release-tables",
        "auto_release": True,
        "submitters": [SCIENTIST],
        "mode": "real",
        "datasets": ["*"],
    }
    (policies / "release-tables.yaml").write_text(yaml.safe_dump(policy))
    small = approve(
        write_job(syftbox, "small", "printf 'sex,A,B\\nF,3,25\\nM,40,31\\n' > outputs/t.csv\n")
    )
    large = approve(
        write_job(syftbox, "large", "printf 'region,n\\nnorth,120\\nsouth,98\\n' > outputs/t.csv\n")
    )
    start_runner()
    for job in (small, large):
        assert wait_done(job).outcome is Outcome.SUCCEEDED
    wait_for(lambda: large.state().released is not None, what="the policy's release")
    report = read_checks(small.path)
    assert report is not None and report.status_of("outputs/t.csv") == "fail"
    assert (small.path / "logs" / "checks.txt").is_file()
    assert small.state().released is None and results_waiting(small)
    released = large.state().released
    assert released is not None and released.method == "policy:release-tables"
    assert released.scope == "all"
