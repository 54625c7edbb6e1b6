"""One run of a comparison: what to run (:class:`RunSpec`), running it (:func:`run_one`), and its result (:class:`RunResult`).

A result file is the JSON of one :class:`RunResult` (:meth:`RunResult.to_json`). Its format is
versioned: ``version`` 2 is written; versions 1 and 2 are read (:meth:`RunResult.from_json`).

- Version 1: the record without ``zoo_rule`` and ``environment``; ``hyperparams_overrides`` may be
  missing (files written before ``--hyperparams`` existed). Read with ``zoo_rule`` derived from
  ``zoo_entry`` (it is determined by it) and ``environment`` ``None`` (not recorded: version-1
  runs built their environments without the entry's ``frame_stack``, ``vec_env_wrapper`` and
  ``callback``: a version-1 run of an entry that has them, such as ``atari`` or ``CarRacing-v3``,
  was not trained as rl-zoo3 trains it; the classic-control, LunarLander and MuJoCo entries have none).
- Version 2: adds ``zoo_rule``, the rule that chose the zoo entry, and ``environment``, how the
  training environment was built.
"""

from __future__ import annotations

import ast
import hashlib
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sb3_trpo_critic.zoo.hyperparameters import ENTRY_RULES, entry_candidates

#: Version of the result files written by :meth:`RunResult.to_json`.
RESULT_VERSION = 2
#: Versions that :meth:`RunResult.from_json` reads.
READABLE_VERSIONS = (1, 2)

#: The rules by which :func:`sb3_trpo_critic.zoo.select_entry` chooses an entry, by name.
ZOO_RULES = ENTRY_RULES


@dataclass(frozen=True)
class RunSpec:
    """
    One training run of a sweep.

    :param algo: rl-zoo3's name of the algorithm (``trpo_critic``, ``ppo``, ``trpo``)
    :param env_id: The Gymnasium environment
    :param seed: Seed of the algorithm and of the training environment (the evaluation environment
        gets ``seed + 10000``)
    :param timesteps: Training budget in environment steps; ``None``: the zoo entry's ``n_timesteps``
    :param eval_points: Evaluations during training (plus one at step 0, and one at the end if the
        last falls short of it)
    :param eval_episodes: Episodes per evaluation
    :param threads: Torch threads of the run
    :param hyperparams: (key, value) pairs that replace keys of the zoo entry (see :func:`parse_hyperparams`)
    :param defaults: Train with the algorithm's constructor defaults instead of a zoo entry
        (:func:`~sb3_trpo_critic.zoo.hyperparameters.constructor_defaults`: ``MlpPolicy``, one env, no
        ``VecNormalize``; ``hyperparams`` then set constructor arguments); the result records the
        rule ``constructor-defaults`` and an empty ``zoo_entry``
    """

    algo: str
    env_id: str
    seed: int
    timesteps: int | None = None
    eval_points: int = 20
    eval_episodes: int = 10
    threads: int = 1
    hyperparams: tuple[tuple[str, Any], ...] = ()
    defaults: bool = False

    @property
    def name(self) -> str:
        """
        ``{algo}__{env_id}__seed{seed}``, plus ``__defaults`` for a run of the constructor defaults,
        and ``__hp`` and a digest of ``hyperparams`` if there are any.
        """
        name = f"{self.algo}__{self.env_id}__seed{self.seed}"
        if self.defaults:
            name += "__defaults"
        if self.hyperparams:
            digest = hashlib.sha1(repr(sorted(self.hyperparams)).encode()).hexdigest()[:8]
            name += f"__hp{digest}"
        return name


def parse_hyperparams(items: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """
    ``KEY:VALUE`` strings to (key, value) pairs, as rl-zoo3's ``--hyperparams``.

    :param items: ``KEY:VALUE`` strings; the value is a Python literal (``8``, ``1e-3``, ``True``) or
        else the string itself, which rl-zoo3's preprocessing evaluates where the file's entries are
        evaluated (``policy_kwargs``)
    :return: The pairs, in order
    :raises ValueError: for an item without ``:`` or without a key
    """
    pairs = []
    for item in items:
        key, separator, text = item.partition(":")
        if not separator or not key:
            raise ValueError(f"--hyperparams takes KEY:VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        pairs.append((key, value))
    return tuple(pairs)


class ResultFormatError(ValueError):
    """A result file's content is not a finished result record of a readable version."""


@dataclass(frozen=True)
class Curve:
    """
    The evaluation points of one run.

    :param timesteps: Environment steps at each evaluation
    :param wall_clock: Training wall-clock (evaluation time excluded) at each evaluation, in seconds
    :param mean_return: Mean return of the evaluation episodes
    :param std_return: Their standard deviation
    """

    timesteps: tuple[int, ...] = ()
    wall_clock: tuple[float, ...] = ()
    mean_return: tuple[float, ...] = ()
    std_return: tuple[float, ...] = ()

    def to_json(self) -> dict[str, list[Any]]:
        """:return: The curve as JSON (lists)"""
        return {
            "timesteps": list(self.timesteps),
            "wall_clock": list(self.wall_clock),
            "mean_return": list(self.mean_return),
            "std_return": list(self.std_return),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Curve:
        """:return: The curve of :meth:`to_json`'s output"""
        return cls(
            timesteps=tuple(int(x) for x in data["timesteps"]),
            wall_clock=tuple(float(x) for x in data["wall_clock"]),
            mean_return=tuple(float(x) for x in data["mean_return"]),
            std_return=tuple(float(x) for x in data["std_return"]),
        )


@dataclass(frozen=True)
class Machine:
    """
    Where a run ran.

    :param python: Python version
    :param torch: Torch version
    :param cpu_count: ``os.cpu_count()``
    :param threads: Torch threads of the run
    :param processor: ``platform.processor()`` or the machine type
    """

    python: str
    torch: str
    cpu_count: int | None
    threads: int
    processor: str

    def to_json(self) -> dict[str, Any]:
        """:return: The record as JSON"""
        return {
            "python": self.python,
            "torch": self.torch,
            "cpu_count": self.cpu_count,
            "threads": self.threads,
            "processor": self.processor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Machine:
        """:return: The record of :meth:`to_json`'s output"""
        cpu_count = data["cpu_count"]
        return cls(
            python=str(data["python"]),
            torch=str(data["torch"]),
            cpu_count=None if cpu_count is None else int(cpu_count),
            threads=int(data["threads"]),
            processor=str(data["processor"]),
        )


@dataclass(frozen=True)
class EnvironmentRecord:
    """
    How the training environment of a run was built (:func:`sb3_trpo_critic.zoo.envs.make_zoo_vec_env`).

    :param vec_env: Classes of the vectorized environment, outermost wrapper first
        (``["VecNormalize", "DummyVecEnv"]``)
    :param observation_space: The observation space the algorithm saw, as its ``repr``
    :param n_envs: Number of copies of the environment
    :param env_wrapper: The entry's ``env_wrapper`` as written in the file, or ``None``
    :param vec_env_wrapper: The entry's ``vec_env_wrapper`` as written in the file, or ``None``
    :param frame_stack: The entry's ``frame_stack``, or ``None``
    :param normalize_kwargs: Keyword arguments of the training ``VecNormalize``; ``None`` without it
    :param callbacks: Classes of the entry's callbacks, passed to ``learn()``
    """

    vec_env: tuple[str, ...]
    observation_space: str
    n_envs: int
    env_wrapper: Any = None
    vec_env_wrapper: Any = None
    frame_stack: int | None = None
    normalize_kwargs: dict[str, Any] | None = None
    callbacks: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """:return: The record as JSON"""
        return {
            "vec_env": list(self.vec_env),
            "observation_space": self.observation_space,
            "n_envs": self.n_envs,
            "env_wrapper": self.env_wrapper,
            "vec_env_wrapper": self.vec_env_wrapper,
            "frame_stack": self.frame_stack,
            "normalize_kwargs": self.normalize_kwargs,
            "callbacks": list(self.callbacks),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EnvironmentRecord:
        """:return: The record of :meth:`to_json`'s output"""
        frame_stack, normalize_kwargs = data["frame_stack"], data["normalize_kwargs"]
        return cls(
            vec_env=tuple(str(name) for name in data["vec_env"]),
            observation_space=str(data["observation_space"]),
            n_envs=int(data["n_envs"]),
            env_wrapper=data["env_wrapper"],
            vec_env_wrapper=data["vec_env_wrapper"],
            frame_stack=None if frame_stack is None else int(frame_stack),
            normalize_kwargs=None if normalize_kwargs is None else dict(normalize_kwargs),
            callbacks=tuple(str(name) for name in data["callbacks"]),
        )


@dataclass(frozen=True)
class RunResult:
    """
    The result of one finished run: the content of its result file.

    :param algo: rl-zoo3's name of the algorithm
    :param env_id: The environment
    :param seed: The seed
    :param timesteps: Environment steps trained
    :param zoo_entry: Key of the zoo entry used (``env_id``, its ``-v4`` version, ``atari``, ``default``)
    :param zoo_source: Path of the hyperparameter file
    :param zoo_note: Empty if the file has an entry for ``env_id``; otherwise which entry was used instead
    :param zoo_rule: The rule that chose the entry, a key of :data:`ZOO_RULES`
    :param hyperparams_overrides: Keys that replaced keys of the entry (``--hyperparams``)
    :param hyperparameters: ``policy``, ``n_envs``, ``normalize`` and the algorithm's keyword arguments
        (schedules and classes by their ``repr`` or name)
    :param training_seconds: Training wall-clock, evaluations excluded
    :param train_seconds: The part of it spent in ``train()``
    :param train_share: ``train_seconds / training_seconds``
    :param fps: Environment steps per second of training wall-clock
    :param final_mean_return: Mean return of the last evaluation
    :param final_std_return: Its standard deviation
    :param eval_episodes: Episodes per evaluation
    :param curve: The evaluations
    :param machine: Where it ran
    :param environment: How the training environment was built; ``None`` when read from a
        version-1 file, which does not record it
    """

    algo: str
    env_id: str
    seed: int
    timesteps: int
    zoo_entry: str
    zoo_source: str
    zoo_note: str
    zoo_rule: str
    hyperparams_overrides: dict[str, Any]
    hyperparameters: dict[str, Any]
    training_seconds: float
    train_seconds: float
    train_share: float
    fps: float
    final_mean_return: float
    final_std_return: float
    eval_episodes: int
    curve: Curve
    machine: Machine
    environment: EnvironmentRecord | None

    def to_json(self) -> dict[str, Any]:
        """:return: The record as the JSON of a result file, of version :data:`RESULT_VERSION`"""
        return {
            "version": RESULT_VERSION,
            "finished": True,
            "algo": self.algo,
            "env_id": self.env_id,
            "seed": self.seed,
            "timesteps": self.timesteps,
            "zoo_entry": self.zoo_entry,
            "zoo_source": self.zoo_source,
            "zoo_note": self.zoo_note,
            "zoo_rule": self.zoo_rule,
            "hyperparams_overrides": self.hyperparams_overrides,
            "hyperparameters": self.hyperparameters,
            "training_seconds": self.training_seconds,
            "train_seconds": self.train_seconds,
            "train_share": self.train_share,
            "fps": self.fps,
            "final_mean_return": self.final_mean_return,
            "final_std_return": self.final_std_return,
            "eval_episodes": self.eval_episodes,
            "curve": self.curve.to_json(),
            "machine": self.machine.to_json(),
            "environment": None if self.environment is None else self.environment.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any) -> RunResult:
        """
        Read a result file's JSON, of any version in :data:`READABLE_VERSIONS` (see the module's description).

        :param data: The parsed JSON
        :return: The record
        :raises ResultFormatError: if ``data`` is not a finished result of a readable version, or a key
            is missing or has a value of the wrong type
        """
        if not isinstance(data, dict):
            raise ResultFormatError(f"not a result record: a JSON {type(data).__name__}")
        version = data.get("version")
        if version not in READABLE_VERSIONS:
            raise ResultFormatError(f"result format version {version!r}; this code reads {READABLE_VERSIONS}")
        if data.get("finished") is not True:
            raise ResultFormatError("the run is not finished")
        try:
            env_id, zoo_entry = str(data["env_id"]), str(data["zoo_entry"])
            if version == 1:
                zoo_rule = entry_rule(env_id, zoo_entry)
                environment = None
                overrides = dict(data.get("hyperparams_overrides", {}))
            else:
                zoo_rule = str(data["zoo_rule"])
                environment = None if data["environment"] is None else EnvironmentRecord.from_json(data["environment"])
                overrides = dict(data["hyperparams_overrides"])
            return cls(
                algo=str(data["algo"]),
                env_id=env_id,
                seed=int(data["seed"]),
                timesteps=int(data["timesteps"]),
                zoo_entry=zoo_entry,
                zoo_source=str(data["zoo_source"]),
                zoo_note=str(data["zoo_note"]),
                zoo_rule=zoo_rule,
                hyperparams_overrides=overrides,
                hyperparameters=dict(data["hyperparameters"]),
                training_seconds=float(data["training_seconds"]),
                train_seconds=float(data["train_seconds"]),
                train_share=float(data["train_share"]),
                fps=float(data["fps"]),
                final_mean_return=float(data["final_mean_return"]),
                final_std_return=float(data["final_std_return"]),
                eval_episodes=int(data["eval_episodes"]),
                curve=Curve.from_json(data["curve"]),
                machine=Machine.from_json(data["machine"]),
                environment=environment,
            )
        except KeyError as error:
            raise ResultFormatError(f"version-{version} result without key {error}") from None
        except (TypeError, ValueError) as error:
            raise ResultFormatError(f"malformed version-{version} result: {error}") from None


def entry_rule(env_id: str, entry: str) -> str:
    """
    The rule of :func:`sb3_trpo_critic.zoo.select_entry` that chose ``entry`` for ``env_id`` (for
    version-1 result files, which did not record it): the rule of that key in
    :func:`~sb3_trpo_critic.zoo.hyperparameters.entry_candidates`.

    :param env_id: The environment
    :param entry: The key of the entry used
    :return: A key of :data:`ZOO_RULES`
    :raises ValueError: if ``select_entry`` cannot have chosen ``entry`` for ``env_id``
    """
    for key, rule in entry_candidates(env_id):
        if key == entry:
            return rule
    raise ValueError(f"no entry-selection rule chooses entry {entry!r} for {env_id}")


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


#: The type of :func:`run_one`, and of any function a sweep can run in its place.
RunFunction = Callable[[RunSpec], RunResult]


def run_one(spec: RunSpec) -> RunResult:
    """
    Train and evaluate one (algo, env, seed) with the zoo entry (or the constructor defaults); nothing is written here.

    The training and evaluation environments are built by
    :func:`sb3_trpo_critic.zoo.envs.make_zoo_vec_env` (as rl-zoo3 builds them for the entry:
    wrappers, ``VecNormalize``, frame stacking), and the entry's callbacks are passed to
    ``learn()``. The evaluation is deterministic, with the training ``VecNormalize`` statistics
    synced, at step 0, every ``timesteps / eval_points`` steps and at the end.

    :param spec: The run
    :return: Its result
    """
    import torch as th
    from rl_zoo3.utils import ALGOS
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import sync_envs_normalization

    from sb3_trpo_critic.zoo import load_zoo_hyperparameters, register
    from sb3_trpo_critic.zoo.envs import make_zoo_vec_env
    from sb3_trpo_critic.zoo.hyperparameters import constructor_defaults

    th.set_num_threads(spec.threads)
    register()
    load = constructor_defaults if spec.defaults else load_zoo_hyperparameters
    zoo = load(spec.algo, spec.env_id, dict(spec.hyperparams))
    timesteps = spec.timesteps or zoo.n_timesteps
    env = make_zoo_vec_env(zoo, spec.seed)
    eval_env = make_zoo_vec_env(zoo, spec.seed + 10_000, eval_env=True)
    model: Any = ALGOS[spec.algo](zoo.policy, env, seed=spec.seed, verbose=0, **zoo.model_kwargs)

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
        ),
        environment=environment,
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
