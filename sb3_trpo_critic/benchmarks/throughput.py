"""Whole-training throughput of TRPOCritic, sb3_contrib.TRPO, PPO and peers from other libraries, side by side, by phase.

Each algorithm trains from its rl-zoo3 entry (``trpo_critic`` from this package's file, the others
from rl-zoo3's, chosen by :func:`~sb3_trpo_critic.zoo.select_entry`) on environments built as
rl-zoo3 builds them, for a fixed number of env steps, in a fresh process per training. The
trainings are interleaved: every round runs each (env, algorithm) once, in a rotated order, so that
a slow or busy moment of the machine does not fall on one algorithm. Every training is warmed up
first, untimed, by one rollout and one update (JIT compilation and first calls would otherwise
weigh on short trainings), then trains for the requested env steps, timed
(:func:`~sb3_trpo_critic.benchmarks.timing.time_learn`: ``learn(timesteps, reset_num_timesteps=False)``).
Each training reports its env-steps per second (rollouts + updates of the timed part; setup, warm-up
and evaluation excluded) and where the time went: ``collect_rollouts`` (rollout), ``train()`` (train)
and the rest of ``learn()`` (other); the table gives the median over rounds and how many times
faster the first algorithm is than each::

    python -m sb3_trpo_critic.benchmarks.throughput --envs HalfCheetah-v5 Hopper-v5 Walker2d-v5 \\
        --algos trpo_critic trpo ppo --timesteps 20480 --rounds 3 --threads 2

In the same rounds, the env stack alone is measured for each env (the row ``env stack (random actions)``):
the training env that the first zoo algorithm of ``--algos`` (``trpo_critic``: ``DummyVecEnv`` +
``VecNormalize``, the entry's ``n_envs``) is built with, stepped with random actions for the same env steps,
after one rollout's worth of steps as its warm-up; each row's env-steps/s is also given as a fraction of its
rate. ``--no-env-stack`` leaves it out.

``--algos`` also takes two peers from other libraries, with their own libraries' recommended settings
(:mod:`sb3_trpo_critic.benchmarks.peers`, the ``peers`` extra): ``tianshou_trpo`` (Tianshou 2.0.1's TRPO
as its MuJoCo example sets it up) and ``sbx_ppo`` (SBX's PPO with rl-zoo3's PPO entry)::

    python -m sb3_trpo_critic.benchmarks.throughput --envs HalfCheetah-v5 Hopper-v5 \\
        --algos trpo_critic tianshou_trpo sbx_ppo --timesteps 20480 --rounds 3 --threads 1

A variant of an algorithm, with keys of its entry replaced, is measured beside the others (interleaved in the
same rounds) with ``--variant ALGO KEY:VALUE ...``, written as rl-zoo3's and the comparison runner's
``--hyperparams``; it is labelled with its words (``trpo_critic n_envs:8 n_steps:256``)::

    python -m sb3_trpo_critic.benchmarks.throughput --envs HalfCheetah-v5 --algos trpo_critic trpo \\
        --variant trpo_critic n_envs:8 n_steps:256

``--vec-env dummy envpool`` measures every algorithm of rl-zoo3's (and the env stack) on each engine
(:mod:`sb3_trpo_critic.envpool`, the ``envpool`` extra), in the same rounds; a row on another engine than
``dummy`` is labelled ``... on envpool``. So are the peers, each on the engines of
:data:`~sb3_trpo_critic.benchmarks.peers.PEER_VEC_ENVS`: ``tianshou_trpo on envpool`` is Tianshou's example on
EnvPool as it runs when EnvPool is installed (Tianshou's ``EnvPoolFactory`` path), ``sbx_ppo on envpool`` SBX's
PPO on the stack ``ppo on envpool`` has. A row's fraction of the env stack is of the env stack on its engine::

    python -m sb3_trpo_critic.benchmarks.throughput --envs HalfCheetah-v5 --algos trpo_critic tianshou_trpo \\
        --vec-env dummy envpool --threads 1

``--threads`` is each training's number of threads: torch's, JAX's (``sbx_ppo``) and, on ``envpool``, every
EnvPool pool's ``num_threads`` (its worker threads stepping the envs): our algorithms' and the env stack's (added
to the entry's ``env_kwargs``, :func:`~sb3_trpo_critic.benchmarks.run.build_env`; an entry that sets
``num_threads`` itself is refused), ``sbx_ppo on envpool``'s the same way, ``tianshou_trpo on envpool``'s through
its factory (:func:`~sb3_trpo_critic.benchmarks.peers.tianshou_env_factory`). Without it, EnvPool would take its
default, ``min(num_envs, cores)`` threads, and step the envs on more threads than ``--threads``. (The comparison
runner passes none: its pools keep EnvPool's default.)
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sb3_trpo_critic.benchmarks.peers import PEER_MODULES, PEER_VEC_ENVS, check_peer, measure_peer
from sb3_trpo_critic.benchmarks.timing import Phases, random_action_seconds, time_learn
from sb3_trpo_critic.extras import requires_extra

with requires_extra("benchmarks", __name__):  # without the extra: one line naming it, exit 2 (issue 25)
    from sb3_trpo_critic.benchmarks.results import DEFAULT_VEC_ENV, VEC_ENVS, RunSpec
    from sb3_trpo_critic.benchmarks.run import build_env, build_training, parse_hyperparams

if TYPE_CHECKING:
    from sb3_trpo_critic.zoo.hyperparameters import ZooHyperparameters

#: The label of the env stack's row: the VecEnv stack of a zoo entry alone, stepped with random actions.
ENV_STACK_LABEL = "env stack (random actions)"
#: The algorithm whose entry's env stack is measured when ``--algos`` has only peers.
ENV_STACK_DEFAULT_ALGO = "trpo_critic"


@dataclass(frozen=True)
class Variant:
    """
    An algorithm and the changes to its zoo entry, as written on the command line; or, with ``env_stack``, the env
    stack that algorithm's entry builds, stepped alone with random actions; ``vec_env``: the engine of its
    environments (:data:`~sb3_trpo_critic.envpool.VEC_ENVS`; a peer's: its library's env stack on that engine,
    :mod:`~sb3_trpo_critic.benchmarks.peers`).
    """

    label: str
    algo: str
    overrides: tuple[tuple[str, Any], ...] = ()
    env_stack: bool = False
    vec_env: str = DEFAULT_VEC_ENV

    def on(self, vec_env: str) -> Variant:
        """:return: This variant on the engine ``vec_env`` (its label says so when it is not ``dummy``)"""
        if vec_env == self.vec_env:
            return self
        label = self.label if vec_env == DEFAULT_VEC_ENV else f"{self.label} on {vec_env}"
        return replace(self, label=label, vec_env=vec_env)


def engines_of(variant: Variant, engines: Sequence[str]) -> list[str]:
    """
    :param variant: An algorithm, a peer or an env stack (on the default engine)
    :param engines: The engines of ``--vec-env``, in order
    :return: Those it is measured on: all of them, or for a peer those of
        :data:`~sb3_trpo_critic.benchmarks.peers.PEER_VEC_ENVS` (the default engine if none of them is asked for)
    """
    if variant.env_stack or variant.algo not in PEER_MODULES:
        return list(engines)
    return [engine for engine in engines if engine in PEER_VEC_ENVS[variant.algo]] or [DEFAULT_VEC_ENV]


def on_engines(variants: Sequence[Variant], engines: Sequence[str]) -> list[Variant]:
    """
    :param variants: The variants (algorithms, peers, env stack), on the default engine
    :param engines: The engines of ``--vec-env``
    :return: Each variant on each of its engines (:func:`engines_of`), in the order of ``variants`` then ``engines``
    """
    unique = list(dict.fromkeys(engines))
    return [variant.on(engine) for variant in variants for engine in engines_of(variant, unique)]


def env_stack_variant(variants: Sequence[Variant]) -> Variant:
    """
    :param variants: The algorithms of ``--algos``
    :return: The env stack of the first of them built from a zoo entry (not a peer), or of
        :data:`ENV_STACK_DEFAULT_ALGO`'s entry
    """
    algo = next((variant.algo for variant in variants if variant.algo not in PEER_MODULES), ENV_STACK_DEFAULT_ALGO)
    return Variant(ENV_STACK_LABEL, algo, env_stack=True)


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
    """
    One training (or the env stack alone): the env steps of its timed part and the seconds spent in each phase.

    :param env_id: The environment
    :param label: The algorithm's label (its ``--algos`` name or ``--variant`` words), or :data:`ENV_STACK_LABEL`
    :param round: The round
    :param timesteps: Env steps timed
    :param seconds: Their seconds
    :param rollout_seconds: Of which collecting rollouts (the env stack: all)
    :param train_seconds: Of which updating
    :param warmup_timesteps: Env steps of the untimed warm-up before them (0 in files written before the warm-up)
    """

    env_id: str
    label: str
    round: int
    timesteps: int
    seconds: float
    rollout_seconds: float
    train_seconds: float
    warmup_timesteps: int = 0

    @property
    def fps(self) -> float:
        return self.timesteps / self.seconds

    @property
    def other_seconds(self) -> float:
        return self.seconds - self.rollout_seconds - self.train_seconds


def rollout_timesteps(zoo: ZooHyperparameters) -> int:
    """
    The env steps of one rollout of an entry's algorithm, ``n_steps * n_envs``, without building the model: ``n_envs``
    is the entry's, ``n_steps`` the entry's or else the default of the algorithm's constructor
    (``rl_zoo3.utils.ALGOS[zoo.algo]``, with ``trpo_critic`` registered), the values the model would have.

    :param zoo: The hyperparameters (:func:`~sb3_trpo_critic.benchmarks.run.build_env`)
    :return: The env steps
    :raises ValueError: for an algorithm whose constructor has no ``n_steps`` with a default (``ars``)
    """
    from rl_zoo3.utils import ALGOS

    from sb3_trpo_critic.zoo import register

    n_steps = zoo.model_kwargs.get("n_steps")
    if n_steps is None:
        register()
        parameter = inspect.signature(ALGOS[zoo.algo].__init__).parameters.get("n_steps")
        if parameter is None or parameter.default is inspect.Parameter.empty:
            raise ValueError(f"{zoo.algo} has no n_steps: its env stack has no rollout to warm up with")
        n_steps = parameter.default
    return int(n_steps) * zoo.n_envs


def measure(env_id: str, variant: Variant, round_: int, timesteps: int, seed: int, threads: int) -> Measurement:
    """
    Train one algorithm (or step its env stack) and time its phases, after a warm-up (run in a fresh process).

    An algorithm of rl-zoo3's is built from its zoo entry by the comparison runner's builder
    (:func:`~sb3_trpo_critic.benchmarks.run.build_training`) and timed by
    :func:`~sb3_trpo_critic.benchmarks.timing.time_learn`; a peer by
    :func:`~sb3_trpo_critic.benchmarks.peers.measure_peer`; an env stack is the training env the same builder makes
    for the entry (:func:`~sb3_trpo_critic.benchmarks.run.build_env`, without a model), stepped with random actions
    for one rollout's env steps (the warm-up, :func:`rollout_timesteps`), then for ``timesteps``
    (:func:`~sb3_trpo_critic.benchmarks.timing.random_action_seconds`). On ``envpool`` every pool, of each of them,
    has ``threads`` worker threads (EnvPool's ``num_threads``).

    :param env_id: The environment
    :param variant: The algorithm, or an env stack
    :param round_: The round, recorded
    :param timesteps: Env steps of the timed part
    :param seed: Seed of the model and of the envs
    :param threads: Torch (and JAX) threads, and EnvPool's ``num_threads`` on ``envpool``
    :return: The measurement
    """
    if variant.algo in PEER_MODULES and not variant.env_stack:
        phases = measure_peer(variant.algo, env_id, timesteps, seed, threads, variant.overrides, variant.vec_env)
    else:
        spec = RunSpec(
            variant.algo,
            env_id,
            seed,
            timesteps=timesteps,
            threads=threads,
            hyperparams=variant.overrides,
            vec_env=variant.vec_env,
        )
        if variant.env_stack:
            zoo, env = build_env(spec, envpool_threads=threads)
            warmup, _ = random_action_seconds(env, rollout_timesteps(zoo), seed)
            steps, seconds = random_action_seconds(env, timesteps, seed + 1)
            phases = Phases(steps, seconds, seconds, 0.0, warmup)
        else:
            _, env, model = build_training(spec, envpool_threads=threads, device="cpu")
            phases = time_learn(model, timesteps)
        env.close()
    return Measurement(env_id, variant.label, round_, **asdict(phases))


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
    """
    A Markdown table per environment: medians over rounds, how many times faster the first variant is than each
    row, and, where the env stack was measured, each row's env-steps/s as a fraction of the env stack's on the same
    engine.

    :param measurements: The measurements
    :param variants: The variants, in the order of the rows (the first is the one the ratios are of; an env stack's
        row has no train or other time)
    :return: The tables
    """
    lines = []
    for env_id in dict.fromkeys(m.env_id for m in measurements):
        here = [m for m in measurements if m.env_id == env_id]
        stacks = {  # engine -> the env stack's env-steps/s on it
            variant.vec_env: statistics.median(m.fps for m in runs)
            for variant in variants
            if variant.env_stack and (runs := [m for m in here if m.label == variant.label])
        }
        fraction = " fraction of env stack |" if stacks else ""
        lines += [
            f"### {env_id}",
            "",
            f"| algo | rounds | env-steps/s | {variants[0].label} is x faster |{fraction} rollout env-steps/s "
            "| train s per 1k steps | other s per 1k steps |",
            "|---|---|---|---|" + ("---|" if fraction else "") + "---|---|---|",
        ]
        base = None
        for variant in variants:
            runs = [m for m in here if m.label == variant.label]
            if not runs:
                continue
            fps = statistics.median(m.fps for m in runs)
            base = base or fps
            rollout_fps = statistics.median(m.timesteps / m.rollout_seconds for m in runs)
            if variant.env_stack:
                train = other = "-"
            else:
                train = f"{statistics.median(1000 * m.train_seconds / m.timesteps for m in runs):.3f}"
                other = f"{statistics.median(1000 * m.other_seconds / m.timesteps for m in runs):.3f}"
            cells = [variant.label, str(len(runs)), f"{fps:.0f}", f"{base / fps:.2f}"]
            if stacks:  # of the env stack on the same engine, for a peer too
                stack_fps = stacks.get(variant.vec_env)
                cells.append("-" if stack_fps is None else f"{fps / stack_fps:.2f}")
            lines.append("| " + " | ".join([*cells, f"{rollout_fps:.0f}", train, other]) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"])
    parser.add_argument(
        "--algos",
        nargs="+",
        default=["trpo_critic", "trpo", "ppo"],
        help="rl-zoo3's algorithms (trpo_critic, trpo, ppo, ...), each with its zoo entry, or the peers "
        f"{', '.join(PEER_MODULES)} (the 'peers' extra); the ratios are of the first",
    )
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
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads of each training: torch's, JAX's and, on envpool, EnvPool's (num_threads)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-env-stack",
        action="store_true",
        help=f"do not measure the env stack alone (the row {ENV_STACK_LABEL!r} and each row's fraction of it)",
    )
    parser.add_argument(
        "--vec-env",
        nargs="+",
        choices=VEC_ENVS,
        default=[DEFAULT_VEC_ENV],
        help="the engines of the environments of rl-zoo3's algorithms, of the peers and of the env stack, each "
        "measured (envpool: the 'envpool' extra)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    try:
        algos = [parse_variant([algo]) for algo in args.algos]
        variants = algos + [parse_variant(words) for words in args.variant]
    except ValueError as error:
        parser.error(str(error))
    for name in ("timesteps", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    for variant in variants:
        if variant.algo == "tianshou_trpo" and variant.overrides:
            parser.error("--variant tianshou_trpo takes no KEY:VALUE: its settings are those of Tianshou's example")
    for algo in dict.fromkeys(variant.algo for variant in variants if variant.algo in PEER_MODULES):
        with requires_extra("peers", "__main__"):  # without the extra: one line naming it, exit 2
            check_peer(algo)
    if not args.no_env_stack:
        variants.append(env_stack_variant(algos))
    variants = on_engines(variants, args.vec_env)

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
