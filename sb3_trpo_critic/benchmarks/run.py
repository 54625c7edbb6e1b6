"""One run of a comparison: building its environment (:func:`build_env`) and model (:func:`build_training`), and
running it (:func:`run_one`).

What to run (:class:`~sb3_trpo_critic.benchmarks.results.RunSpec`) and its result
(:class:`~sb3_trpo_critic.benchmarks.results.RunResult`) are the records of
:mod:`sb3_trpo_critic.benchmarks.results`.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sb3_trpo_critic.benchmarks.results import Curve, EnvironmentRecord, Machine, RunResult, RunSpec

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

    from sb3_trpo_critic.zoo.hyperparameters import ZooHyperparameters


def parse_hyperparams(items: Sequence[str], option: str = "--hyperparams") -> tuple[tuple[str, Any], ...]:
    """
    ``KEY:VALUE`` strings to (key, value) pairs, as rl-zoo3's ``--hyperparams``: the one syntax of the
    benchmarks' changes to a zoo entry (the comparison runner's and ``update_cost``'s ``--hyperparams``,
    the throughput benchmark's ``--variant``).

    :param items: ``KEY:VALUE`` strings; the value is a Python literal (``8``, ``1e-3``, ``True``) or
        else the string itself, which rl-zoo3's preprocessing evaluates where the file's entries are
        evaluated (``policy_kwargs``)
    :param option: The command-line option named in the error
    :return: The pairs, in order
    :raises ValueError: for an item without ``:`` or without a key
    """
    pairs = []
    for item in items:
        key, separator, text = item.partition(":")
        if not separator or not key:
            raise ValueError(f"{option} takes KEY:VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        pairs.append((key, value))
    return tuple(pairs)


def hyperparam_argument(text: str) -> tuple[str, Any]:
    """
    An argparse ``type`` for one ``KEY:VALUE`` (``--hyperparams KEY:VALUE ...``): :func:`parse_hyperparams`
    of one item, with its error as argparse's.

    :param text: One ``KEY:VALUE``
    :return: The (key, value) pair
    :raises argparse.ArgumentTypeError: for an item without ``:`` or without a key
    """
    import argparse

    try:
        (pair,) = parse_hyperparams([text])
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return pair


def describe(value: Any) -> Any:
    """
    A hyperparameter value as JSON: schedules, classes and other objects by their name or ``repr``.

    :param value: A value of a zoo entry
    :return: A JSON-serializable value
    """
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [describe(v) for v in value]
    return getattr(value, "__name__", repr(value))


#: The libraries whose versions a result records (:attr:`~sb3_trpo_critic.benchmarks.results.Machine.libraries`),
#: by name: the names of their distributions, the first installed one counts.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "sb3_trpo_critic": ("sb3_trpo_critic",),
    "stable_baselines3": ("stable_baselines3",),
    "sb3_contrib": ("sb3_contrib",),
    "rl_zoo3": ("rl_zoo3",),
    "gymnasium": ("gymnasium",),
    "mujoco": ("mujoco",),
    "box2d": ("box2d", "Box2D"),
    "envpool": ("envpool",),
}


def library_versions() -> dict[str, str]:
    """
    The versions of the installed ones of :data:`LIBRARIES`, from their distributions' metadata
    (``importlib.metadata``; none of them is imported).

    :return: Name -> version, in the order of :data:`LIBRARIES`; a library that is not installed is left out
    """
    versions = {}
    for name, distributions in LIBRARIES.items():
        for distribution in distributions:
            try:
                versions[name] = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
            break
    return versions


#: The type of :func:`run_one`, and of any function a sweep can run in its place.
RunFunction = Callable[[RunSpec], RunResult]


class Training(NamedTuple):
    """A model ready to train (:func:`build_training`)."""

    #: the hyperparameters it was built with
    zoo: ZooHyperparameters
    #: its training environment
    env: VecEnv
    #: the model, on ``env``
    model: Any


def check_envpool_threads(threads: int) -> int:
    """
    :param threads: EnvPool's ``num_threads`` asked for (its worker threads)
    :return: It, if it is >= 1
    :raises ValueError: Otherwise (EnvPool takes 0 as its default, ``min(num_envs, cores)``, which is not a number
        of threads asked for)
    """
    if threads < 1:
        raise ValueError(f"EnvPool's num_threads must be >= 1, got {threads}")
    return threads


def with_envpool_threads(zoo: ZooHyperparameters, threads: int) -> ZooHyperparameters:
    """
    The hyperparameters with EnvPool's ``num_threads`` set to ``threads`` in their ``env_kwargs``: the number of
    worker threads of each pool built from them on ``envpool``
    (:class:`~sb3_trpo_critic.envpool.EnvPoolVecEnv` passes the key to ``envpool.make_gymnasium``). For an
    environment built on ``envpool`` only: gymnasium's environments take no such argument.

    :param zoo: The hyperparameters (a frozen record: a new one is returned)
    :param threads: EnvPool's worker threads, >= 1
    :return: ``zoo`` with ``env_kwargs`` plus ``num_threads=threads``
    :raises ValueError: if the entry (or its changes) sets ``num_threads`` itself, which conflicts with ``threads``,
        or for ``threads`` < 1 (EnvPool takes 0 as its default, ``min(num_envs, cores)``)
    """
    import dataclasses

    check_envpool_threads(threads)
    if "num_threads" in zoo.env_kwargs:
        raise ValueError(
            f"{zoo.algo} on {zoo.env_id}: the entry's env_kwargs set num_threads={zoo.env_kwargs['num_threads']!r}, "
            f"which conflicts with the {threads} EnvPool threads asked for; leave one of the two out"
        )
    return dataclasses.replace(zoo, env_kwargs={**zoo.env_kwargs, "num_threads": threads})


def build_env(spec: RunSpec, envpool_threads: int | None = None) -> tuple[ZooHyperparameters, VecEnv]:
    """
    The hyperparameters and training environment of one run, without its model; used by :func:`build_training` and
    by the throughput benchmark's env stack (:mod:`sb3_trpo_critic.benchmarks.throughput`).

    Sets torch's threads to ``spec.threads`` and registers ``trpo_critic`` with rl-zoo3; loads the zoo
    entry of ``(spec.algo, spec.env_id)`` (:func:`~sb3_trpo_critic.zoo.load_zoo_hyperparameters`), or the
    constructor defaults when ``spec.defaults`` is set
    (:func:`~sb3_trpo_critic.zoo.hyperparameters.constructor_defaults`), with ``spec.hyperparams``
    replacing its keys; builds the training environment as rl-zoo3 builds it for the entry
    (:func:`~sb3_trpo_critic.zoo.envs.make_zoo_vec_env`, seeded with ``spec.seed``, on the engine
    ``spec.vec_env``).

    :param spec: The run (its ``timesteps``, ``eval_points`` and ``eval_episodes`` are not used here)
    :param envpool_threads: On ``spec.vec_env == "envpool"``, EnvPool's ``num_threads``, added to the entry's
        ``env_kwargs`` (:func:`with_envpool_threads`; the returned hyperparameters have it too): the throughput
        benchmark passes its ``--threads``. ``None`` (the comparison runner, :func:`run_one`): nothing added, so
        the pools have EnvPool's default (``num_threads=0``: ``min(num_envs, cores)`` worker threads). Not used on
        ``dummy``
    :return: The hyperparameters and the environment
    :raises ValueError: if ``envpool_threads`` is given on ``envpool`` and the entry sets ``num_threads`` itself
    """
    import torch as th

    from sb3_trpo_critic.zoo import load_zoo_hyperparameters, register
    from sb3_trpo_critic.zoo.envs import make_zoo_vec_env
    from sb3_trpo_critic.zoo.hyperparameters import constructor_defaults

    th.set_num_threads(spec.threads)
    register()
    load = constructor_defaults if spec.defaults else load_zoo_hyperparameters
    zoo = load(spec.algo, spec.env_id, dict(spec.hyperparams))
    if envpool_threads is not None and spec.vec_env == "envpool":
        zoo = with_envpool_threads(zoo, envpool_threads)
    env = make_zoo_vec_env(zoo, spec.seed, vec_env=spec.vec_env)
    return zoo, env


def build_training(spec: RunSpec, envpool_threads: int | None = None, **model_arguments: Any) -> Training:
    """
    The hyperparameters, training environment and model of one run; used by :func:`run_one` and by the
    throughput benchmark (:mod:`sb3_trpo_critic.benchmarks.throughput`).

    The hyperparameters and the environment are :func:`build_env`'s (which also sets torch's threads and registers
    ``trpo_critic`` with rl-zoo3); the model is
    ``ALGOS[spec.algo](policy, env, seed=spec.seed, verbose=0, **model_arguments, **the entry's arguments)``.

    :param spec: The run (its ``timesteps``, ``eval_points`` and ``eval_episodes`` are not used here)
    :param envpool_threads: EnvPool's ``num_threads`` on ``envpool`` (:func:`build_env`): the throughput
        benchmark's ``--threads``; ``None`` (:func:`run_one`): EnvPool's default
    :param model_arguments: Further constructor arguments, not in the entry (e.g. ``device="cpu"``)
    :return: The hyperparameters, the environment and the model
    """
    from rl_zoo3.utils import ALGOS

    zoo, env = build_env(spec, envpool_threads)
    model = ALGOS[spec.algo](zoo.policy, env, seed=spec.seed, verbose=0, **model_arguments, **zoo.model_kwargs)
    return Training(zoo, env, model)


def run_one(spec: RunSpec) -> RunResult:
    """
    Train and evaluate one (algo, env, seed) with the zoo entry (or the constructor defaults); nothing is written here.

    The model and its training environment are built by :func:`build_training` (without ``envpool_threads``: on
    ``envpool`` the pools keep EnvPool's default ``num_threads``); the evaluation
    environment, like the training one, by :func:`sb3_trpo_critic.zoo.envs.make_zoo_vec_env` (as
    rl-zoo3 builds them for the entry: wrappers, ``VecNormalize``, frame stacking; both on the engine
    ``spec.vec_env``, the evaluation one seeded with ``spec.seed + 10000``), and the entry's
    callbacks are passed to ``learn()``. The evaluation is deterministic, with the training
    ``VecNormalize`` statistics synced, at step 0, every ``timesteps / eval_points`` steps and at the end.

    :param spec: The run
    :return: Its result
    """
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import sync_envs_normalization

    from sb3_trpo_critic.zoo.envs import make_zoo_vec_env

    zoo, env, model = build_training(spec)
    timesteps = spec.timesteps or zoo.n_timesteps
    eval_env = make_zoo_vec_env(zoo, spec.seed + 10_000, eval_env=True, vec_env=spec.vec_env)

    # Time spent in train(), by wrapping the bound method.
    train_seconds = [0.0]
    original_train = model.train

    def timed_train() -> None:
        start = time.perf_counter()
        original_train()
        train_seconds[0] += time.perf_counter() - start

    model.train = timed_train

    points: list[tuple[int, float, float, float]] = []
    eval_every = max(timesteps // spec.eval_points, 1)
    clock = {"start": time.perf_counter(), "eval": 0.0}

    def evaluate(num_timesteps: int) -> None:
        start = time.perf_counter()
        sync_envs_normalization(env, eval_env)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=spec.eval_episodes, deterministic=True)
        assert isinstance(mean, float) and isinstance(std, float)
        clock["eval"] += time.perf_counter() - start
        training_time = time.perf_counter() - clock["start"] - clock["eval"]
        points.append((int(num_timesteps), training_time, float(mean), float(std)))

    class PeriodicEvaluation(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                evaluate(self.num_timesteps)
                self.next_eval += eval_every
            return True

    evaluate(0)
    model.learn(total_timesteps=timesteps, callback=[*zoo.callbacks, PeriodicEvaluation()])
    if points[-1][0] != model.num_timesteps:
        evaluate(model.num_timesteps)
    training_seconds = time.perf_counter() - clock["start"] - clock["eval"]
    environment = EnvironmentRecord(
        vec_env=vec_env_classes(env),
        observation_space=repr(model.observation_space),
        n_envs=env.num_envs,
        env_wrapper=describe(zoo.raw.get("env_wrapper")),
        vec_env_wrapper=describe(zoo.raw.get("vec_env_wrapper")),
        frame_stack=zoo.frame_stack,
        normalize_kwargs=describe(zoo.normalize_kwargs) if zoo.normalize else None,
        callbacks=tuple(type(callback).__name__ for callback in zoo.callbacks),
    )
    env.close()
    eval_env.close()
    curve = Curve(
        timesteps=tuple(point[0] for point in points),
        wall_clock=tuple(point[1] for point in points),
        mean_return=tuple(point[2] for point in points),
        std_return=tuple(point[3] for point in points),
    )
    return RunResult(
        algo=spec.algo,
        env_id=spec.env_id,
        seed=spec.seed,
        timesteps=int(model.num_timesteps),
        zoo_entry=zoo.entry,
        zoo_source=zoo.source,
        zoo_note=zoo.note,
        zoo_rule=zoo.rule,
        hyperparams_overrides=describe(dict(spec.hyperparams)),
        hyperparameters=describe({"policy": zoo.policy, "n_envs": zoo.n_envs, "normalize": zoo.normalize, **zoo.model_kwargs}),
        training_seconds=training_seconds,
        train_seconds=train_seconds[0],
        train_share=train_seconds[0] / training_seconds,
        fps=model.num_timesteps / training_seconds,
        final_mean_return=curve.mean_return[-1],
        final_std_return=curve.std_return[-1],
        eval_episodes=spec.eval_episodes,
        curve=curve,
        machine=Machine(
            python=platform.python_version(),
            torch=th.__version__,
            cpu_count=os.cpu_count(),
            threads=spec.threads,
            processor=platform.processor() or platform.machine(),
            libraries=library_versions(),
        ),
        environment=environment,
        vec_env=spec.vec_env,
    )


def vec_env_classes(env: Any) -> tuple[str, ...]:
    """
    :param env: A vectorized environment
    :return: The class names of its wrappers, outermost first, then of the innermost ``VecEnv``
    """
    from stable_baselines3.common.vec_env import VecEnvWrapper

    names = []
    while isinstance(env, VecEnvWrapper):
        names.append(type(env).__name__)
        env = env.venv
    names.append(type(env).__name__)
    return tuple(names)
