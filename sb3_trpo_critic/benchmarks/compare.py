"""Compare TRPOCritic with SB3 PPO and sb3_contrib.TRPO: a resumable sweep, and a report.

Run a sweep (one result file per (algo, env, seed), written atomically; finished runs are skipped
when the sweep is run again; ``run`` may be left out)::

    python -m sb3_trpo_critic.benchmarks.compare [run] --algos trpo_critic ppo trpo \\
        --envs Pendulum-v1 HalfCheetah-v5 --seeds 5 [--timesteps N] [--workers K] \\
        [--backend local|ray] [--address ADDRESS] [--hyperparams KEY:VALUE ...] [--defaults] \\
        [--vec-env dummy|envpool] --out results/

Each run trains with that algo's rl-zoo3 hyperparameters (``trpo_critic`` from this package's
``trpo_critic.yml``, the others from rl-zoo3's files; a ``-v5`` MuJoCo env without a zoo entry uses
the ``-v4`` entry, recorded in the result) on environments built as rl-zoo3 builds them for the
entry (wrappers, normalization, frame stacking; the entry's callbacks are passed to ``learn()``),
evaluates periodically on a separate env (deterministic, VecNormalize statistics synced), and
records env steps, wall-clock, fps, the share of time spent in ``train()``, and the evaluation
returns. ``--hyperparams`` replaces keys of every run's zoo entry, written as in the hyperparameter
file (``n_envs:8 policy_kwargs:"dict(log_std_init=-1)"``), as rl-zoo3's ``--hyperparams`` does; such
runs get a suffix in their name, so they never mix with runs of the unchanged entries. ``--defaults``
trains each algorithm with its constructor defaults instead (``MlpPolicy``, one env, no
``VecNormalize``: the README's first line), recorded in each result as the rule
``constructor-defaults``. ``--vec-env envpool`` builds the training and evaluation environments on EnvPool
(:mod:`sb3_trpo_critic.envpool`; the ``envpool`` extra) instead of gymnasium's ``DummyVecEnv``, with the
same wrappers; such runs get ``__envpool`` in their name and record ``vec_env`` in their result (EnvPool's
MuJoCo environments are its own implementation: compare their returns with runs on EnvPool only). SIGTERM or
Ctrl-C stops the sweep and its runs in progress; finished results are kept (exit status 128 + the
signal number).

Write the report (Markdown, tables and learning-curve PNGs)::

    python -m sb3_trpo_critic.benchmarks.compare report results/ [--out results/report]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from sb3_trpo_critic.extras import check_extra, requires_extra

with requires_extra("benchmarks", __name__):  # without the extra: one line naming it, exit 2 (issue 25)
    from sb3_trpo_critic.benchmarks.report import write_report
    from sb3_trpo_critic.benchmarks.results import DEFAULT_VEC_ENV, VEC_ENVS, RunSpec, is_finished, result_path
    from sb3_trpo_critic.benchmarks.run import RunFunction, hyperparam_argument, parse_hyperparams, run_one
    from sb3_trpo_critic.benchmarks.sweep import BACKENDS, Terminated, run_sweep

__all__ = [
    "RunSpec",
    "build_parser",
    "build_specs",
    "is_finished",
    "main",
    "parse_hyperparams",
    "result_path",
    "run_one",
    "run_sweep",
    "write_report",
]

#: The subcommands; a command line that starts with none of them (nor ``-h``) is a ``run``.
COMMANDS = ("run", "report")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """:return: The parser of the command line, with the subcommands ``run`` and ``report``"""
    parser = argparse.ArgumentParser(
        prog="python -m sb3_trpo_critic.benchmarks.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,report}")

    run = commands.add_parser("run", help="run a sweep (the default command)", description="Run a sweep")
    run.add_argument("--algos", nargs="+", default=["trpo_critic", "ppo", "trpo"])
    run.add_argument("--envs", nargs="+", required=True)
    run.add_argument("--seeds", type=_positive_int, default=3, help="number of seeds per (algo, env)")
    run.add_argument("--seed-offset", type=int, default=0)
    run.add_argument("--timesteps", type=int, default=None, help="default: each zoo entry's n_timesteps")
    run.add_argument("--eval-points", type=_positive_int, default=20, help="evaluations per run (plus one at step 0)")
    run.add_argument("--eval-episodes", type=_positive_int, default=10)
    run.add_argument("--workers", type=_positive_int, default=1, help="parallel runs (local backend)")
    run.add_argument("--threads", type=_positive_int, default=None, help="torch threads per run; default: cores / workers")
    run.add_argument("--backend", choices=BACKENDS, default="local")
    run.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    run.add_argument(
        "--hyperparams",
        nargs="+",
        type=hyperparam_argument,
        default=[],
        metavar="KEY:VALUE",
        help='replace keys of every run\'s zoo entry, e.g. n_envs:8 policy_kwargs:"dict(log_std_init=-1)"',
    )
    run.add_argument(
        "--defaults",
        action="store_true",
        help="constructor defaults instead of zoo entries (MlpPolicy, one env, no VecNormalize); --hyperparams then set "
        "constructor arguments",
    )
    run.add_argument(
        "--vec-env",
        choices=VEC_ENVS,
        default=DEFAULT_VEC_ENV,
        help="engine of the environments: dummy (gymnasium's, in DummyVecEnv) or envpool (EnvPool's; the envpool extra)",
    )
    run.add_argument("--out", type=Path, required=True)

    report = commands.add_parser("report", help="write the Markdown report of a sweep", description="Write the report")
    report.add_argument("results", type=Path)
    report.add_argument("--out", type=Path, default=None, help="default: RESULTS/report")
    return parser


def build_specs(args: argparse.Namespace) -> list[RunSpec]:
    """
    :param args: The parsed ``run`` command line (``hyperparams``: a tuple of (key, value) pairs, ``threads`` set)
    :return: The runs: every env x algo x seed
    """
    return [
        RunSpec(
            algo,
            env_id,
            seed,
            args.timesteps,
            args.eval_points,
            args.eval_episodes,
            args.threads,
            args.hyperparams,
            args.defaults,
            vec_env=args.vec_env,
        )
        for env_id in args.envs
        for algo in args.algos
        for seed in range(args.seed_offset, args.seed_offset + args.seeds)
    ]


def _run_command(args: argparse.Namespace, run: RunFunction) -> int:
    args.hyperparams = tuple(args.hyperparams)
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.workers)
    if args.vec_env == "envpool":  # without it: one line naming the extra (exit 2), not a failure of every run
        check_extra("envpool", needed_by="--vec-env envpool")
    try:
        summary = run_sweep(build_specs(args), args.out, args.workers, args.backend, args.address, run=run)
    except KeyboardInterrupt as interrupt:
        signum = interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT
        print(
            f"interrupted by {signal.Signals(signum).name}: runs in progress stopped, finished results kept in "
            f"{args.out}; the same command resumes the sweep",
            file=sys.stderr,
        )
        return 128 + signum
    print(f"{summary.ran} runs done, {summary.skipped} already finished, {summary.failed} failed; results in {args.out}")
    return 1 if summary.failed else 0


def main(argv: Sequence[str] | None = None, *, run: RunFunction = run_one) -> int:
    """
    The command line: ``run`` (the default when no subcommand is given) or ``report``.

    :param argv: The arguments; default: ``sys.argv[1:]``
    :param run: The function that runs one spec (for ``run``; it must be importable by the worker processes)
    :return: The exit status: 0; 1 if a run failed; 128 + the signal number if SIGINT or SIGTERM stopped the sweep
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv.insert(0, "run")
    args = build_parser().parse_args(argv)
    if args.command == "report":
        print(write_report(args.results, args.out))
        return 0
    return _run_command(args, run)


if __name__ == "__main__":
    with requires_extra("benchmarks", __name__):  # rliable (report) and ray (--backend ray) are imported when used
        raise SystemExit(main())
