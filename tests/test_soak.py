"""The soak's one-minute profile (``scripts/soak`` runs the ten-minute one): two service
instances and two workers through every fault of the schedule, and the checker finds
nothing. Marked ``once`` (first Python of scripts/test)."""

from __future__ import annotations

import re

import pytest

from tests.soak import run

pytestmark = [pytest.mark.once, pytest.mark.slow]


def test_a_one_minute_soak_with_every_fault_finds_nothing(capsys):
    findings = run(minutes=1, connections=12, instances=2)
    print("\n".join(findings.phases))
    print(findings.killed_before_saving_line())
    print("\n".join(findings.excused))
    print(findings.line())
    assert findings.problems == []
    # A kill can land between a provider's rotation and the save (~ms per refresh): the
    # inherent loss README names, at most once per kill, and never counted as dead.
    assert findings.killed_mid_save <= 2
    assert (findings.wrong_tenant, findings.superseded, findings.lost, findings.dead) == (
        0,
        0,
        0,
        0,
    )
    assert re.fullmatch(
        r"soak: \d+ requests, 0 wrong tenant, 0 superseded, 0 lost, 0 wrongly dead, "
        r"\d+ grants for \d+ refresh rounds",
        findings.line(),
    )
    phases = {line.split()[0] for line in findings.phases}
    assert {"redis-frozen", "postgres-restarted", "provider-outage", "instance-killed"} <= phases
    assert findings.requests > 1000 and findings.grants > 0
