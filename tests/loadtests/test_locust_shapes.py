"""The exercise ramp shapes, ticked through their stages in a subprocess.

Importing locust patches the process for gevent, so the shapes are never imported here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

_TICKS = textwrap.dedent(
    """
    import json, sys
    from loadtests import _locust_shapes as shapes

    shape = shapes.SHAPES[sys.argv[1]]()
    now = [0.0]
    shapes.time.perf_counter = lambda: now[0]
    shape.start_time = 0.0
    ticks = []
    for second in map(float, sys.argv[2:]):
        now[0] = second
        ticks.append(shape.tick())
    print(json.dumps(ticks))
    """
)


def _ticks(shape: str, seconds: list[float], **env: str) -> list[Any]:
    done = subprocess.run(
        [sys.executable, "-c", _TICKS, shape, *map(str, seconds)],
        cwd=ROOT,
        env=os.environ | env,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(done.stdout))


def test_ramps_spread_over_their_stage_whatever_the_peak_and_scale() -> None:
    # NormalDay: 0 -> 30 % of 2,000 users within its first 120 s (a tenth of that scaled).
    [(users, rate)] = _ticks("NormalDay", [1.0], EUCCS_PEAK_USERS="2000", EUCCS_TIME_SCALE="0.1")
    assert users == 600
    assert rate == 600 / 12  # all of them by the end of the 12 s stage
    [_, (shift, slow)] = _ticks("NormalDay", [1.0, 800.0])  # 30 -> 50 of 100 users in 300 s
    assert shift == 50 and slow == 20 / 300  # a fraction of a user per second: not hurried
    # MajorIncident: the surge from 30 % to 100 % of 100 users lasts its 30 s.
    [_, (peak, surge), (held, _)] = _ticks("MajorIncident", [10.0, 190.0, 300.0])
    assert (peak, held) == (100, 100)
    assert surge == (100 - 30) / 30
    assert _ticks("NormalDay", [1500.0]) == [None]  # the day is over


def test_link_outage_runs_the_cut_and_the_restore_as_its_stages_begin(tmp_path: Path) -> None:
    cut, restored = tmp_path / "cut", tmp_path / "restored"
    ticks = _ticks(
        "LinkOutage",
        [10.0, 310.0, 620.0],
        EUCCS_OUTAGE_COMMAND=f"true && touch {cut}",  # a shell command line
        EUCCS_RESTORE_COMMAND=f"touch {restored}",
    )
    assert [users for users, _rate in ticks] == [50, 50, 50]
    deadline = time.monotonic() + 10
    while not (cut.exists() and restored.exists()):
        assert time.monotonic() < deadline, "the outage commands did not run"
        time.sleep(0.05)


def test_a_command_that_cannot_start_does_not_stop_the_shape() -> None:
    ticks = _ticks(
        "LinkOutage", [10.0, 310.0, 620.0, 1300.0], EUCCS_OUTAGE_COMMAND="/nonexistent/cut"
    )
    assert ticks[1:] == [[50, 1.0], [50, 1.0], None]  # on through the outage, then the end
