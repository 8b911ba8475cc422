"""The benchmark runner's own contracts (``python -m bench``), without running a benchmark.

Speed is never asserted here: ``python -m bench smoke`` (in .ci/run) runs one tiny round of every
workload. These tests hold what the smoke cannot show: what a server's environment may contain,
where results may go, how a comparison reads, and that every workload takes the common options.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench.lib import cli, results
from bench.lib.procs import server_env

REPO = Path(__file__).resolve().parent.parent


def test_a_server_sees_only_the_settings_the_run_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # thumbsvc refuses unknown THUMBSVC_* names: the runner's own variables must never reach it.
    monkeypatch.setenv("THUMBSVC_BENCH_OUT", "/tmp/somewhere")
    monkeypatch.setenv("THUMBSVC_RENDER_SLOTS", "7")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "1")
    monkeypatch.setenv("PILLOW_BLOCK_SIZE", "1m")
    env = server_env({"THUMBSVC_KEY": "k", "MALLOC_ARENA_MAX": "2"})
    assert {name for name in env if name.startswith(("THUMBSVC_", "MALLOC_", "PILLOW_"))} == {
        "THUMBSVC_KEY",
        "MALLOC_ARENA_MAX",
    }
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert env["PATH"]


def test_results_are_refused_inside_the_repository(tmp_path: Path) -> None:
    result = results.Result("inprocess", [])
    with pytest.raises(SystemExit, match="outside the repository"):
        results.write(result, REPO / "bench" / "r.json")
    written = results.write(result, tmp_path / "r.json")
    assert results.load(written)["workload"] == "inprocess"


def test_a_comparison_names_a_change_only_beyond_both_runs_ranges() -> None:
    base = results.Result("http", [])
    base.add("cold.c4.thumbsvc.thumbs_per_core_s", [13.0, 13.5, 14.0], "thumbs/core-s", "higher")
    base.add("cold.c4.thumbsvc.p99_ms", [500, 520], "ms", "lower")
    base.add("cold.c4.thumbsvc.status_503", [0, 0], "count", "lower")
    new = results.Result("http", [])
    new.add("cold.c4.thumbsvc.thumbs_per_core_s", [11.0, 11.5, 12.0], "thumbs/core-s", "higher")
    new.add("cold.c4.thumbsvc.p99_ms", [510, 530], "ms", "lower")
    new.add("cold.c4.thumbsvc.status_503", [0, None], "count", "lower")
    lines = {line.split()[0]: line.split()[-1] for line in results.compare(base.to_json(), new.to_json())[2:]}
    assert lines == {
        "cold.c4.thumbsvc.thumbs_per_core_s": "WORSE",
        "cold.c4.thumbsvc.p99_ms": "~",
        "cold.c4.thumbsvc.status_503": "~",
    }


def test_a_baseline_holds_metrics_only_and_compares_per_workload(tmp_path: Path) -> None:
    from bench.baseline import make

    run = results.Result("memory", ["--sets", "w1"])
    run.add("w1.thumbsvc.peak_rss_mib", [140.0, 150.0], "MiB", "lower")
    run.details["w1"] = {"big": list(range(1000))}
    baseline = make([run.to_json()], "0.1.0")
    assert "details" not in baseline["workloads"]["memory"]
    assert results.section(baseline, "memory") is not None
    assert results.section(baseline, "http") is None


def test_alt_specs_name_a_checkout_settings_or_both(tmp_path: Path) -> None:
    assert cli.parse_alt("nobudget=:THUMBSVC_RENDER_MEMORY_BUDGET=0") == (
        "nobudget",
        None,
        {"THUMBSVC_RENDER_MEMORY_BUDGET": "0"},
    )
    assert cli.parse_alt(f"base={tmp_path}:A=1,B=2") == ("base", tmp_path.resolve(), {"A": "1", "B": "2"})
    with pytest.raises(SystemExit):
        cli.parse_alt("no-equals-sign")


@pytest.mark.parametrize("name", bench.workloads())
def test_every_workload_runs_from_the_one_entry_point_with_the_common_options(name: str) -> None:
    if name == "floors" and importlib.util.find_spec("pyperf") is None:
        pytest.skip("pyperf is in the bench extra")
    done = subprocess.run(
        [sys.executable, "-m", "bench", name, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for option in ("--smoke", "--out", "--compare"):
        assert option in done.stdout


def test_an_unknown_workload_is_refused_with_the_list() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "nope"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2
    assert "http" in done.stderr
