"""Whole-training throughput of TRPOCritic, sb3_contrib.TRPO and PPO, side by side, by phase.

Each algorithm trains from its rl-zoo3 entry (``trpo_critic`` from this package's file, the others
from rl-zoo3's, chosen by :func:`~sb3_trpo_critic.zoo.select_entry`) on environments built as
rl-zoo3 builds them, for a fixed number of env steps, in a fresh process per training. The
trainings are interleaved: every round runs each (env, algorithm) once, in a rotated order, so that
a slow or busy moment of the machine does not fall on one algorithm. Each training reports its
env-steps per second (rollouts + updates, setup and evaluation excluded) and where the time went:
``collect_rollouts`` (rollout), ``train()`` (train) and the rest of ``learn()`` (other); the table
gives the median over rounds and how many times faster the first algorithm is than each::

    python -m sb3_trpo_critic.benchmarks.throughput --envs HalfCheetah-v5 Hopper-v5 Walker2d-v5 \\
        --algos trpo_critic trpo ppo --timesteps 20480 --rounds 3 --threads 2

A variant of an algorithm, with keys of its entry replaced, is measured beside the others (interleaved in the
same rounds) with ``--variant ALGO KEY:VALUE ...``, written as rl-zoo3's and the comparison runner's
``--hyperparams``; it is labelled with its words (``trpo_critic n_envs:8 n_steps:256``)::

    python -m sb3_trpo_critic.benchmarks.throughput --envs HalfCheetah-v5 --algos trpo_critic trpo \\
        --variant trpo_critic n_envs:8 n_steps:256
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sb3_trpo_critic.extras import requires_extra

with requires_extra("benchmarks", __name__):  # without the extra: one line naming it, exit 2 (issue 25)
    from sb3_trpo_critic.benchmarks.results import RunSpec
    from sb3_trpo_critic.benchmarks.run import build_training, parse_hyperparams


@dataclass(frozen=True)
class Variant:
    """An algorithm and the changes to its zoo entry, as written on the command line."""

    label: str
    algo: str
    overrides: tuple[tuple[str, Any], ...] = ()


def parse_variant(words: Sequence[str]) -> Variant:
    """
    ``ALGO [KEY:VALUE ...]`` (the words of ``--variant``, or one of ``--algos``) to a :class:`Variant`,
    labelled with its words joined by spaces.

    :param words: The algorithm, then ``KEY:VALUE`` changes to its entry
        (:func:`~sb3_trpo_critic.benchmarks.run.parse_hyperparams`)
    :return: The variant
    :raises ValueError: without an algorithm, for an algorithm written with brackets or ``:``, or for a change
        that is not ``KEY:VALUE``
    """
    if not words:
        raise ValueError("expected ALGO [KEY:VALUE ...], got nothing")
    algo, *changes = words
    if "[" in algo or ":" in algo:
        raise ValueError(f"expected an algorithm, got {algo!r}: changes to its entry are written --variant ALGO KEY:VALUE ...")
    return Variant(" ".join(words), algo, parse_hyperparams(changes, option=f"--variant {algo}"))


@dataclass(frozen=True)
class Measurement:
    """One training: its env steps and the seconds spent in each phase."""

    env_id: str
    label: str
    round: int
    timesteps: int
    seconds: float
    rollout_seconds: float
    train_seconds: float

    @property
    def fps(self) -> float:
        return self.timesteps / self.seconds

    @property
    def other_seconds(self) -> float:
        return self.seconds - self.rollout_seconds - self.train_seconds


def measure(env_id: str, variant: Variant, round_: int, timesteps: int, seed: int, threads: int) -> Measurement:
    """Train one algorithm from its zoo entry and time its phases (run in a fresh process)."""
    spec = RunSpec(variant.algo, env_id, seed, timesteps=timesteps, threads=threads, hyperparams=variant.overrides)
    _, env, model = build_training(spec, device="cpu")
    clock = {"rollout": 0.0, "train": 0.0}

    def timed(name: str, method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                clock[name] += time.perf_counter() - start

        return wrapper

    model.collect_rollouts = timed("rollout", model.collect_rollouts)
    model.train = timed("train", model.train)
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    seconds = time.perf_counter() - start
    env.close()
    return Measurement(env_id, variant.label, round_, int(model.num_timesteps), seconds, clock["rollout"], clock["train"])


def _measure_job(job: tuple[str, Variant, int, int, int, int]) -> Measurement:
    return measure(*job)


def schedule(envs: Sequence[str], variants: Sequence[Variant], rounds: int) -> list[tuple[str, Variant, int]]:
    """Every (env, variant) once per round; the order of the variants rotates from round to round."""
    jobs = []
    for round_ in range(rounds):
        shift = round_ % len(variants)
        rotated = [*variants[shift:], *variants[:shift]]
        jobs += [(env_id, variant, round_) for env_id in envs for variant in rotated]
    return jobs


def summarize(measurements: Sequence[Measurement], variants: Sequence[Variant]) -> str:
    """A Markdown table per environment: medians over rounds, and ratios of fps to the first variant."""
    lines = []
    for env_id in dict.fromkeys(m.env_id for m in measurements):
        lines += [
            f"### {env_id}",
            "",
            f"| algo | rounds | env-steps/s | {variants[0].label} is x faster | rollout env-steps/s "
            "| train s per 1k steps | other s per 1k steps |",
            "|---|---|---|---|---|---|---|",
        ]
        base = None
        for variant in variants:
            runs = [m for m in measurements if m.env_id == env_id and m.label == variant.label]
            if not runs:
                continue
            fps = statistics.median(m.fps for m in runs)
            base = base or fps
            rollout_fps = statistics.median(m.timesteps / m.rollout_seconds for m in runs)
            train = statistics.median(1000 * m.train_seconds / m.timesteps for m in runs)
            other = statistics.median(1000 * m.other_seconds / m.timesteps for m in runs)
            lines.append(
                f"| {variant.label} | {len(runs)} | {fps:.0f} | {base / fps:.2f} | {rollout_fps:.0f} "
                f"| {train:.3f} | {other:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"])
    parser.add_argument("--algos", nargs="+", default=["trpo_critic", "trpo", "ppo"])
    parser.add_argument(
        "--variant",
        nargs="+",
        action="append",
        default=[],
        metavar=("ALGO", "KEY:VALUE"),
        help="also measure ALGO with these keys of its entry replaced (after --algos; repeatable), "
        "e.g. --variant trpo_critic n_envs:8 n_steps:256",
    )
    parser.add_argument("--timesteps", type=int, default=20_480, help="env steps per training")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    try:
        variants = [parse_variant([algo]) for algo in args.algos] + [parse_variant(words) for words in args.variant]
    except ValueError as error:
        parser.error(str(error))
    for name in ("timesteps", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")

    jobs = [
        (env_id, variant, round_, args.timesteps, args.seed, args.threads)
        for env_id, variant, round_ in schedule(args.envs, variants, args.rounds)
    ]
    measurements = []
    # one fresh process per training, one training at a time
    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for measurement in pool.imap(_measure_job, jobs):
            measurements.append(measurement)
            print(
                f"round {measurement.round} {measurement.env_id} {measurement.label}: {measurement.fps:.0f} env-steps/s "
                f"(rollout {measurement.rollout_seconds:.1f} s, train {measurement.train_seconds:.1f} s, "
                f"other {measurement.other_seconds:.1f} s)",
                file=sys.stderr,
            )
    print(summarize(measurements, variants))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([asdict(m) for m in measurements], indent=1))
    return 0


if __name__ == "__main__":
    with requires_extra("benchmarks", __name__):  # rl-zoo3's modules imported when used
        raise SystemExit(main())
