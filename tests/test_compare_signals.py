"""The sweep's local process pool: failed runs are reported, and SIGTERM or SIGINT stops the runner and its workers.

The run functions below are imported by the spawned worker processes (as ``tests.test_compare_signals``),
so this module imports nothing heavy.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sb3_trpo_critic.benchmarks.results import RunSpec, read_result
from sb3_trpo_critic.benchmarks.sweep import RunFailure, SweepSummary, local_executor, run_sweep

# Every test here starts worker processes (a spawned pool, or the command line in a subprocess).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "tests" / "data" / "version_2" / "trpo_critic__CartPole-v1__seed0.json"
MARKERS = "SB3_TRPO_CRITIC_TEST_MARKERS"


def sleeping_run(spec):
    """Marks that it started (a file named after its process id), then sleeps far longer than any test."""
    (Path(os.environ[MARKERS]) / str(os.getpid())).write_text(spec.name)
    time.sleep(600)
    raise AssertionError("a sleeping run was not stopped")


def canned_run(spec):
    """Seed 0 fails; other seeds return a committed result, relabelled."""
    if spec.seed == 0:
        raise RuntimeError(f"no result for {spec.name}")
    return dataclasses.replace(read_result(RESULT), seed=spec.seed)


def test_local_pool_returns_results_and_reports_failures(tmp_path, capsys):
    specs = [RunSpec("trpo_critic", "CartPole-v1", seed) for seed in (0, 1)]
    outcomes = {spec.seed: outcome for spec, outcome in local_executor(2, canned_run)(specs)}
    assert isinstance(outcomes[0], RunFailure)
    assert str(outcomes[0]) == "RuntimeError: no result for trpo_critic__CartPole-v1__seed0"
    assert "in canned_run" in outcomes[0].details  # the worker's traceback
    assert outcomes[1] == dataclasses.replace(read_result(RESULT), seed=1)

    summary = run_sweep(specs, tmp_path, workers=2, run=canned_run)
    assert summary == SweepSummary(total=2, skipped=0, ran=1, failed=1)
    assert "run trpo_critic__CartPole-v1__seed0 failed: RuntimeError: no result" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["trpo_critic__CartPole-v1__seed1.json"]


def _status(pid):
    """The state letter of a process (``None`` if there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _is_running(pid):
    return _status(pid) not in (None, "Z")  # a zombie has exited


def _children(pid):
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
    return children


def _wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


# The command line with sleeping runs. Python leaves SIGINT ignored when it starts with it ignored (as in a
# background job of a non-interactive shell): give it Python's usual handler, as in a terminal.
RUNNER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from sb3_trpo_critic.benchmarks import compare
from tests.test_compare_signals import sleeping_run
sys.exit(compare.main(sys.argv[1:], run=sleeping_run))
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_runner_and_its_workers(tmp_path, signum):
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "out"
    env = {**os.environ, MARKERS: str(markers), "PYTHONPATH": str(ROOT)}
    args = ["--algos", "trpo_critic", "--envs", "CartPole-v1", "--seeds", "2", "--workers", "2", "--threads", "1"]
    log = tmp_path / "runner.log"
    with log.open("w") as output:  # a file, not a pipe: a worker left running would hold a pipe open
        runner = subprocess.Popen(
            [sys.executable, "-c", RUNNER, *args, "--out", str(out)], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    workers: set[int] = set()
    try:
        started = _wait_until(lambda: len(list(markers.iterdir())) == 2 or runner.poll() is not None, timeout=120)
        assert started and runner.poll() is None, log.read_text()
        workers = {int(path.name) for path in markers.iterdir()}
        children = set(_children(runner.pid))
        assert workers <= children  # both runs in progress, each in a worker process of the runner

        runner.send_signal(signum)
        status = runner.wait(timeout=30)
        assert status == 128 + signum, log.read_text()
        assert f"interrupted by {signal.Signals(signum).name}" in log.read_text()
        # the workers (and any other process the runner started) are gone too
        assert _wait_until(lambda: not any(_is_running(pid) for pid in children), timeout=10), [
            (pid, _status(pid)) for pid in children
        ]
        assert not list(out.glob("*.json"))  # nothing finished, nothing written
    finally:
        for pid in workers:  # left over only if the test failed: end the sleeping runs it started
            if _is_running(pid):
                os.kill(pid, signal.SIGKILL)
        if runner.poll() is None:
            runner.kill()
            runner.wait()
