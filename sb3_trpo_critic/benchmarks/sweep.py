"""A resumable sweep: the executors (a local process pool or Ray), and the sweep.

Each run's result is written atomically to ``{out}/{spec.name}.json`` as it arrives, in the result
store of :mod:`sb3_trpo_critic.benchmarks.results`; a run whose file holds a finished result
(:meth:`~sb3_trpo_critic.benchmarks.results.RunResult.from_json` reads it) is skipped when the
sweep is run again. Several sweeps may share a folder: each checks a run's
file again just before the run starts and when its result arrives, and never runs or overwrites a
run that another sweep finished meanwhile. SIGTERM, like SIGINT, interrupts a sweep: the worker
processes are terminated, the finished results are kept, and :class:`KeyboardInterrupt` (for
SIGTERM, its subclass :class:`Terminated`) is raised.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from sb3_trpo_critic.benchmarks.results import ResultFormatError, ResultStore, RunResult, RunSpec, read_result, result_path
from sb3_trpo_critic.benchmarks.run import RunFunction, run_one

#: What an executor yields for a run: its result, or the error that ended it.
Outcome = RunResult | BaseException
#: Runs specs and yields each with its outcome, in any order, as they finish.
Executor = Callable[[Sequence[RunSpec]], Iterable[tuple[RunSpec, Outcome]]]
#: The executors :func:`make_executor` chooses from.
BACKENDS = ("local", "ray")

# ----------------------------------------------------------------------------------------------
# Executors
# ----------------------------------------------------------------------------------------------


class RunFailure(Exception):
    """
    The error that ended a run in a worker process, as text (any exception can be sent back this way).

    :param error_type: The class name of the error
    :param message: Its message
    :param details: Its formatted traceback
    """

    def __init__(self, error_type: str, message: str, details: str) -> None:
        super().__init__(error_type, message, details)
        self.error_type = error_type
        self.message = message
        self.details = details

    @classmethod
    def from_exception(cls, error: BaseException) -> RunFailure:
        """:return: The failure describing ``error``"""
        details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return cls(type(error).__name__, str(error), details)

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


def _run_reporting_errors(job: tuple[RunFunction, RunSpec]) -> tuple[RunSpec, RunResult | RunFailure]:
    """Run one spec in a worker process; an error is returned, so that the sweep goes on."""
    run, spec = job
    try:
        return spec, run(spec)
    except Exception as error:  # any failure of the run: reported by the sweep, which goes on
        return spec, RunFailure.from_exception(error)


def _ignore_sigint() -> None:
    """Pool initializer: a Ctrl-C reaches the whole process group; the sweep's process alone handles it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def local_executor(workers: int = 1, run: RunFunction = run_one) -> Executor:
    """
    Run specs in a pool of ``workers`` spawned processes, a fresh process per run.

    When the sweep stops early (an exception, :class:`KeyboardInterrupt`, the sweep closing the
    iterator), the pool is terminated: the runs in progress are killed and their processes joined.

    :param workers: Runs at a time
    :param run: The function that runs one spec; it must be importable by the spawned processes
    :return: The executor
    """

    def execute(specs: Sequence[RunSpec]) -> Iterator[tuple[RunSpec, Outcome]]:
        if not specs:
            return
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(min(workers, len(specs)), initializer=_ignore_sigint, maxtasksperchild=1)
        completed = False
        try:
            yield from pool.imap_unordered(_run_reporting_errors, [(run, spec) for spec in specs])
            completed = True
        finally:
            if completed:
                pool.close()
            else:
                pool.terminate()
            pool.join()

    return execute


def _call(run: RunFunction, spec: RunSpec) -> RunResult:
    """``run(spec)``, as a plain function for :func:`ray.remote`."""
    return run(spec)


def ray_executor(address: str | None = None, run: RunFunction = run_one) -> Executor:
    """
    Run specs as Ray tasks of ``spec.threads`` CPUs each, on a local Ray or the cluster at ``address``.

    When the sweep stops early, the tasks still pending are cancelled.

    :param address: A Ray cluster address; ``None``: the Ray already initialized, else a local one
    :param run: The function that runs one spec
    :return: The executor
    """

    def execute(specs: Sequence[RunSpec]) -> Iterator[tuple[RunSpec, Outcome]]:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        remote_call = ray.remote(_call)  # ray.remote takes a function, not any callable (a functools.partial)
        pending = {remote_call.options(num_cpus=spec.threads).remote(run, spec): spec for spec in specs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                spec = pending.pop(done[0])
                try:
                    outcome: Outcome = ray.get(done[0])
                except ray.exceptions.RayError as error:  # the run failed (or its worker died): reported
                    outcome = error
                yield spec, outcome
        finally:
            for reference in pending:
                ray.cancel(reference, force=True)

    return execute


def make_executor(
    backend: str = "local", *, workers: int = 1, address: str | None = None, run: RunFunction = run_one
) -> Executor:
    """
    The executor of a backend.

    :param backend: ``local`` (:func:`local_executor`) or ``ray`` (:func:`ray_executor`)
    :param workers: Runs at a time (local)
    :param address: Ray cluster address (ray)
    :param run: The function that runs one spec
    :return: The executor
    :raises ValueError: for another backend
    """
    if backend == "local":
        return local_executor(workers, run)
    if backend == "ray":
        return ray_executor(address, run)
    raise ValueError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")


# ----------------------------------------------------------------------------------------------
# Sweep
# ----------------------------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """
    The :class:`KeyboardInterrupt` that a signal other than SIGINT (SIGTERM) raises during a sweep.

    :param signum: The signal
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def sigterm_as_keyboard_interrupt() -> Iterator[None]:
    """
    Within the block, SIGTERM raises :class:`Terminated` (a :class:`KeyboardInterrupt`) in the main thread.

    Further SIGTERMs are ignored until the block ends, so that the clean-up they started finishes.
    Outside the main thread (where Python cannot set signal handlers), the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class SweepSummary:
    """
    What a sweep did.

    :param total: Runs of the sweep
    :param skipped: Runs already finished, not run again (also those another sweep on the same folder
        finished while this one ran)
    :param ran: Runs that finished now
    :param failed: Runs that failed
    """

    total: int
    skipped: int
    ran: int
    failed: int


def _progress(total: int, initial: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of this package
        return None
    return tqdm(total=total, initial=initial, unit="run", desc="runs")


def _report_failure(spec: RunSpec, error: BaseException) -> None:
    described = str(error) if isinstance(error, RunFailure) else f"{type(error).__name__}: {error}"
    print(f"run {spec.name} failed: {described}", file=sys.stderr)
    if isinstance(error, RunFailure):
        print(error.details, file=sys.stderr)


def run_unless_finished(run: RunFunction, out: Path, spec: RunSpec) -> RunResult:
    """
    Run ``spec``, unless its result file in ``out`` is finished by now: another sweep on the same folder
    may have finished it since this sweep listed its runs. Called by the worker just before the run starts.

    :param run: The function that runs one spec
    :param out: The results folder
    :param spec: The run
    :return: The result in the file, if finished; else the result of ``run(spec)``
    """
    try:
        return read_result(result_path(out, spec))
    except (OSError, ResultFormatError):  # no file, or not a finished result: run it
        return run(spec)


def run_sweep(
    specs: Sequence[RunSpec],
    out: Path,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    executor: Executor | None = None,
    *,
    run: RunFunction = run_one,
) -> SweepSummary:
    """
    Run every spec whose result file is not finished; write each result atomically as it arrives.

    Another sweep may work on the same folder at the same time: a run whose file it finishes before this
    sweep starts the run is not run (:func:`run_unless_finished`, in the worker), and a result whose file is
    finished by the time it arrives is not written (the first finished file stays); both count as skipped.

    SIGTERM during the sweep raises :class:`Terminated` (see :func:`sigterm_as_keyboard_interrupt`);
    on it, as on any exception, the executor is closed, which stops its runs.

    :param specs: The runs
    :param out: The results folder
    :param workers: Runs at a time (local backend)
    :param backend: ``local`` or ``ray`` (:func:`make_executor`)
    :param address: Ray cluster address
    :param executor: Run the specs with this instead of the backend's executor
    :param run: The function that runs one spec (the backend's executor calls it through
        :func:`run_unless_finished`)
    :return: What was done
    """
    store = ResultStore(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [spec for spec in specs if not store.is_finished(spec)]
    skipped = len(specs) - len(todo)
    failed = 0
    finished_elsewhere = 0
    bar = _progress(len(specs), skipped)
    try:
        if todo:
            checked_run = functools.partial(run_unless_finished, run, out)
            execute = executor or make_executor(backend, workers=workers, address=address, run=checked_run)
            with sigterm_as_keyboard_interrupt():
                outcomes = execute(todo)
                try:
                    for spec, outcome in outcomes:
                        if isinstance(outcome, BaseException):
                            failed += 1
                            _report_failure(spec, outcome)
                        elif store.is_finished(spec):  # another sweep finished it: its file stays
                            finished_elsewhere += 1
                        else:
                            store.write(spec, outcome)
                        if bar is not None:
                            bar.update(1)
                finally:
                    close = getattr(outcomes, "close", None)
                    if callable(close):  # a generator: stop it (the local executor then terminates its pool)
                        close()
    finally:
        if bar is not None:
            bar.close()
    return SweepSummary(
        total=len(specs),
        skipped=skipped + finished_elsewhere,
        ran=len(todo) - failed - finished_elsewhere,
        failed=failed,
    )
