"""Default render memory from the process's memory limit: cgroup files read as the kernel writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from thumbsvc.sizing import (
    BASELINE_BYTES,
    BUDGET_PER_SLOT,
    DEFAULT_CEILING,
    MIN_BUDGET_BYTES,
    memory_limit,
    read_limit,
    render_memory,
)

GIB = 1 << 30


def cgroup(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "sys-fs-cgroup"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    proc_file = tmp_path / "proc-self-cgroup"
    proc_file.write_text(proc)
    return root, proc_file


@pytest.mark.parametrize(
    ("text", "limit"),
    [("max\n", None), ("1073741824\n", GIB), ("9223372036854771712\n", None), ("", None), ("junk", None), ("0", None)],
)
def test_read_limit(text: str, limit: int | None) -> None:
    assert read_limit(text) == limit


def test_a_cgroup_v2_limit_in_a_container(tmp_path: Path) -> None:
    root, proc = cgroup(tmp_path, "0::/\n", {"memory.max": "1073741824\n"})
    assert memory_limit(root, proc) == GIB


def test_a_cgroup_v2_limit_on_the_process_path(tmp_path: Path) -> None:
    files = {"memory.max": "max\n", "kubepods/pod1/app/memory.max": "536870912\n"}
    root, proc = cgroup(tmp_path, "0::/kubepods/pod1/app\n", files)
    assert memory_limit(root, proc) == 512 << 20


def test_a_cgroup_v1_limit(tmp_path: Path) -> None:
    proc = "9:name=systemd:/\n4:memory:/docker/abc\n1:cpu:/\n"
    root, proc_file = cgroup(
        tmp_path,
        proc,
        {
            "memory/docker/abc/memory.limit_in_bytes": "805306368\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    assert memory_limit(root, proc_file) == 768 << 20


@pytest.mark.parametrize(
    "files",
    [{}, {"memory.max": "max\n"}, {"memory/memory.limit_in_bytes": "9223372036854771712\n"}],
)
def test_no_limit(tmp_path: Path, files: dict[str, str]) -> None:
    root, proc = cgroup(tmp_path, "0::/\n", files)
    assert memory_limit(root, proc) is None
    assert memory_limit(tmp_path / "nowhere", tmp_path / "no-proc") is None


def test_without_a_limit_each_slot_gets_its_share() -> None:
    sizes = render_memory(None, slots=2, cache_bytes=224_000_000)
    assert (sizes.budget, sizes.ceiling) == (2 * BUDGET_PER_SLOT, DEFAULT_CEILING)
    assert "no memory limit" in sizes.source
    assert render_memory(None, slots=8, cache_bytes=0).budget == 8 * BUDGET_PER_SLOT


def test_under_a_limit_renders_get_what_the_caches_and_an_idle_process_leave() -> None:
    sizes = render_memory(GIB, slots=2, cache_bytes=224_000_000)
    margin = int(GIB * 0.10)
    assert sizes.budget == sizes.ceiling == GIB - BASELINE_BYTES - 224_000_000 - margin
    # Two 24 MP progressive renders (about 99 MB each) fit side by side in the k8s default of 1 GiB.
    assert sizes.budget > 2 * 99_000_000
    assert "memory limit 1074 MB" in sizes.source


def test_a_limit_too_small_for_the_caches_names_what_to_change() -> None:
    with pytest.raises(ValueError) as info:
        render_memory(256 << 20, slots=2, cache_bytes=224_000_000)
    message = str(info.value)
    assert "THUMBSVC_CACHE_BYTES" in message and "raise the limit" in message
    assert render_memory(256 << 20, slots=2, cache_bytes=0).budget >= MIN_BUDGET_BYTES
