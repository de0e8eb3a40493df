"""infra.sampling.Sampler.cpu_between: CPU inside a window, without a service's start-up."""

from __future__ import annotations

from infra.sampling import Sample, Sampler


def _sampler(**series: list[tuple[float, int, float]]) -> Sampler:
    sampler = Sampler(pids={})
    for name, points in series.items():
        sampler.samples[name] = [Sample(t, pid, 100.0, cpu) for t, pid, cpu in points]
    return sampler


def test_a_service_started_before_the_window_counts_from_its_last_sample_before_it() -> None:
    sampler = _sampler(worker=[(0.0, 1, 4.0), (9.5, 1, 6.0), (10.5, 1, 7.0), (20.0, 1, 12.0)])
    assert sampler.cpu_between("worker", 10.0, 20.0) == 12.0 - 6.0  # start-up (6 s) left out


def test_a_process_started_inside_the_window_counts_from_zero_even_sampled_once() -> None:
    """A publish of a small file lives less than one sampling period."""
    sampler = _sampler(publisher=[(10.4, 7, 0.8), (12.0, 8, 0.5), (13.0, 8, 1.5)])
    assert sampler.cpu_between("publisher", 10.0, 20.0) == 0.8 + 1.5


def test_samples_after_the_window_are_not_counted() -> None:
    sampler = _sampler(worker=[(11.0, 1, 1.0), (20.5, 1, 2.0), (40.0, 1, 9.0)])
    assert sampler.cpu_between("worker", 10.0, 20.0) == 2.0


def test_children_finds_a_process_started_by_this_one() -> None:
    import os
    import subprocess
    import sys

    from infra.sampling import children

    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        assert child.pid in children(os.getpid())
    finally:
        child.communicate(b"")


def test_a_postgres_backend_started_between_snapshots_counts_from_zero() -> None:
    from infra.sampling import pg_delta

    assert pg_delta({1: 5.0, 2: 1.0}, {1: 6.5, 2: 1.0, 3: 0.25}) == 1.5 + 0.25
    assert pg_delta(None, {1: 1.0}) is None
    assert pg_delta({1: 5.0, 2: 3.0}, {1: 6.0, 2: 0.0}) == 1.0  # 2 exited while being read


def test_server_cpu_is_the_broker_and_postgres_use_between_two_snapshots() -> None:
    from infra.sampling import server_cpu

    assert server_cpu((2.0, {1: 5.0}), (3.5, {1: 6.0, 9: 0.5})) == (1.5, 1.5)
    assert server_cpu((None, None), (1.0, None)) == (None, None)
