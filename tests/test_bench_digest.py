"""Bench figure j's harness (bench/digest.py, bench/load.py) against the real replica and the real floor.

Not a speed test: it checks that the figure still runs against whatever the
index engine is, and that its windows are what it says they are.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from bench import digest
from bench.servers import Server, load


def test_the_load_traces_every_measured_call_and_a_watch_that_is_never_seen_lets_it_run(tmp_path: Path) -> None:
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("\n".join(f"+1202555{i:04d}" for i in range(2000)))
    trace = tmp_path / "trace.bin"
    floor = Server.noop().wait_serving(health=False)
    try:
        result = load(
            floor.address,
            *("--numbers", str(numbers), "--take", "2000", "--in-flight", "4"),
            *("--warmup", "0.3", "--duration", "1", "--trace", str(trace)),
            # The floor answers ALLOW to everything: never BLOCK.
            *("--watch", "+12025550001,+12025550002", "--watch-for", "block", "--stop-when-seen"),
        )
    finally:
        floor.stop()
    assert math.isnan(result["seen_at"])
    assert result["seconds"] >= 1.0
    starts = np.fromfile(trace)[: int(result["calls"])]
    assert len(np.fromfile(trace)) == 2 * result["calls"] > 0
    assert starts.min() >= result["measured_from"]
    whole = digest.cut(trace, result["measured_from"], result["measured_from"] + 10)
    assert whole["calls"] == result["calls"]
    first_half = digest.cut(trace, result["measured_from"], result["measured_from"] + 0.5)
    assert 0 < first_half["calls"] < result["calls"]


async def test_figure_j_times_a_window_from_the_commit_to_the_switch_for_an_import_and_its_delete(
    cluster_url: str, tmp_path: Path
) -> None:
    cores = sorted(os.sched_getaffinity(0))
    # More rows than a replica applies in place: the change set is built and switched in.
    figures = await digest.run(cluster_url, 3000, 2, 4, tmp_path, {cores[0]}, {cores[-1]}, numbers=5000)
    imported, deleted = figures["rounds"]
    assert (imported["kind"], deleted["kind"]) == ("import", "delete")
    for r in (imported, deleted):
        assert 0 < r["window_s"] < digest.LONGEST_WINDOW_S
        assert r["during"]["calls"] > 0 and r["floor"]["calls"] > 0
        assert r["ratio"] > 0 and r["p99_ratio"] > 0
        first, switched = r["data_version"]
        assert switched > first  # the watch saw the change set's data_version, not the one before
    assert deleted["data_version"][0] >= imported["data_version"][1]
    assert figures["import"]["rounds"] == figures["delete"]["rounds"] == 1
