"""The result schema of the comparison runner: what a run is (:class:`RunSpec`), its result record
(:class:`RunResult`), and the result store (one file per run: :class:`ResultStore`).

A results folder holds one file per run, ``{spec.name}.json`` (:func:`result_path`), the JSON of one
:class:`RunResult` (:meth:`RunResult.to_json`), written atomically (:func:`write_atomically`). Its
format is versioned: ``version`` 3 is written, versions 2 and 3 are read (:meth:`RunResult.from_json`).
Version 3 adds ``vec_env``, the engine of the vectorized environments (``dummy``: gymnasium's environments
in ``DummyVecEnv``; ``envpool``: EnvPool's); a version-2 file was written before there was a choice, and
is read with ``vec_env`` ``dummy``. Both record ``zoo_rule``, the rule that chose the zoo entry, and
``environment``, how the training environment was built (``null`` in the files converted from version 1,
which did not record it). Version 1 (without ``zoo_rule`` and ``environment``) is no longer read: a
version-1 file is refused with a :class:`ResultFormatError`; the committed version-1 files were converted
to version 2, with ``zoo_rule`` derived from ``zoo_entry``, ``environment`` ``null`` and
``hyperparams_overrides`` ``{}`` where it was missing.

The record of the machine (``machine``) also holds ``libraries``, the versions of the libraries that produced the
run (:attr:`Machine.libraries`); it is not a new version: a file written before it was recorded (every version-2
file, and the version-3 files written before it) has no ``libraries`` key and is read with an empty record, and code
that does not know it reads a file that has it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sb3_trpo_critic.envpool import VEC_ENVS, check_vec_env
from sb3_trpo_critic.zoo.hyperparameters import ENTRY_RULES

#: Version of the result files written by :meth:`RunResult.to_json`.
RESULT_VERSION = 3
#: Versions that :meth:`RunResult.from_json` reads.
READABLE_VERSIONS = (2, 3)

#: The engine of a run by default, and of every run of a version-2 file (one of :data:`~sb3_trpo_critic.envpool.VEC_ENVS`).
DEFAULT_VEC_ENV = VEC_ENVS[0]

#: The rules by which :func:`sb3_trpo_critic.zoo.select_entry` chooses an entry, by name.
ZOO_RULES = ENTRY_RULES

# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


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
    :param hyperparams: (key, value) pairs that replace keys of the zoo entry (see
        :func:`~sb3_trpo_critic.benchmarks.run.parse_hyperparams`)
    :param defaults: Train with the algorithm's constructor defaults instead of a zoo entry
        (:func:`~sb3_trpo_critic.zoo.hyperparameters.constructor_defaults`: ``MlpPolicy``, one env, no
        ``VecNormalize``; ``hyperparams`` then set constructor arguments); the result records the
        rule ``constructor-defaults`` and an empty ``zoo_entry``
    :param vec_env: The engine of the training and evaluation environments, one of :data:`~sb3_trpo_critic.envpool.VEC_ENVS`
        (``dummy``: gymnasium's environments in ``DummyVecEnv``, as rl-zoo3 builds them; ``envpool``: EnvPool's,
        :mod:`sb3_trpo_critic.envpool`)
    :raises ValueError: For an unknown ``vec_env``
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
    vec_env: str = DEFAULT_VEC_ENV

    def __post_init__(self) -> None:
        check_vec_env(self.vec_env)

    @property
    def name(self) -> str:
        """
        ``{algo}__{env_id}__seed{seed}``, plus ``__defaults`` for a run of the constructor defaults,
        ``__{vec_env}`` for a run on another engine than ``dummy`` (``__envpool``), and ``__hp`` and a digest of
        ``hyperparams`` if there are any.
        """
        name = f"{self.algo}__{self.env_id}__seed{self.seed}"
        if self.defaults:
            name += "__defaults"
        if self.vec_env != DEFAULT_VEC_ENV:
            name += f"__{self.vec_env}"
        if self.hyperparams:
            digest = hashlib.sha1(repr(sorted(self.hyperparams)).encode()).hexdigest()[:8]
            name += f"__hp{digest}"
        return name


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
    :param libraries: Versions of the installed ones of the libraries that make a run (the keys of
        :data:`~sb3_trpo_critic.benchmarks.run.LIBRARIES`: this package, Stable-Baselines3, sb3-contrib, rl-zoo3,
        Gymnasium, MuJoCo, Box2D, EnvPool), by name; empty in a file written before they were recorded
    """

    python: str
    torch: str
    cpu_count: int | None
    threads: int
    processor: str
    libraries: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """:return: The record as JSON"""
        return {
            "python": self.python,
            "torch": self.torch,
            "cpu_count": self.cpu_count,
            "threads": self.threads,
            "processor": self.processor,
            "libraries": dict(self.libraries),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Machine:
        """
        :param data: :meth:`to_json`'s output, or a record written before ``libraries`` was (without the key)
        :return: The record (without ``libraries``: with an empty one)
        :raises TypeError: if ``libraries`` is not a JSON object
        """
        cpu_count, libraries = data["cpu_count"], data.get("libraries", {})
        if not isinstance(libraries, Mapping):
            raise TypeError(f"libraries is a JSON {type(libraries).__name__}, not an object")
        return cls(
            python=str(data["python"]),
            torch=str(data["torch"]),
            cpu_count=None if cpu_count is None else int(cpu_count),
            threads=int(data["threads"]),
            processor=str(data["processor"]),
            libraries={str(name): str(version) for name, version in libraries.items()},
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
    :param environment: How the training environment was built; ``None`` in a file converted from
        version 1, which did not record it
    :param vec_env: The engine of the environments, one of :data:`~sb3_trpo_critic.envpool.VEC_ENVS` (``dummy`` in a version-2
        file)
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
    vec_env: str = DEFAULT_VEC_ENV

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
            "vec_env": self.vec_env,
        }

    @classmethod
    def from_json(cls, data: Any) -> RunResult:
        """
        Read a result file's JSON, of a version in :data:`READABLE_VERSIONS` (see the module's description).

        :param data: The parsed JSON
        :return: The record
        :raises ResultFormatError: if ``data`` is not a finished result of a readable version, or a key
            is missing or has a value of the wrong type
        """
        if not isinstance(data, dict):
            raise ResultFormatError(f"not a result record: a JSON {type(data).__name__}")
        version = data.get("version")
        if version == 1:
            raise ResultFormatError(
                "result format version 1 is no longer read (it does not record zoo_rule and environment); "
                f"this code reads {READABLE_VERSIONS}"
            )
        if version not in READABLE_VERSIONS:
            raise ResultFormatError(f"result format version {version!r}; this code reads {READABLE_VERSIONS}")
        if data.get("finished") is not True:
            raise ResultFormatError("the run is not finished")
        try:
            environment = data["environment"]
            vec_env = DEFAULT_VEC_ENV if version == 2 else check_vec_env(str(data["vec_env"]))
            return cls(
                algo=str(data["algo"]),
                env_id=str(data["env_id"]),
                seed=int(data["seed"]),
                timesteps=int(data["timesteps"]),
                zoo_entry=str(data["zoo_entry"]),
                zoo_source=str(data["zoo_source"]),
                zoo_note=str(data["zoo_note"]),
                zoo_rule=str(data["zoo_rule"]),
                hyperparams_overrides=dict(data["hyperparams_overrides"]),
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
                environment=None if environment is None else EnvironmentRecord.from_json(environment),
                vec_env=vec_env,
            )
        except KeyError as error:
            raise ResultFormatError(f"version-{version} result without key {error}") from None
        except (TypeError, ValueError) as error:
            raise ResultFormatError(f"malformed version-{version} result: {error}") from None


# ----------------------------------------------------------------------------------------------
# Result store
# ----------------------------------------------------------------------------------------------


class UnreadableResultWarning(UserWarning):
    """A file of a results folder is not a finished result: it is left out of the report."""


@dataclass(frozen=True)
class UnreadableResult:
    """
    A ``.json`` file of a results folder that is not a finished result.

    :param path: The file
    :param reason: Why it was not read
    """

    path: Path
    reason: str


@dataclass(frozen=True)
class LoadedResults:
    """
    The content of a results folder.

    :param results: The finished results, in the order of their file names
    :param unreadable: The other ``.json`` files, in the order of their names
    """

    results: tuple[RunResult, ...]
    unreadable: tuple[UnreadableResult, ...]


def result_path(out: Path, spec: RunSpec) -> Path:
    """:return: The result file of ``spec`` in the folder ``out``"""
    return out / f"{spec.name}.json"


def read_result(path: Path) -> RunResult:
    """
    Read a result file.

    :param path: The file
    :return: Its result
    :raises OSError: if the file cannot be read
    :raises ResultFormatError: if it is not JSON, or not a finished result of a readable version
    """
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError as error:  # json.JSONDecodeError, UnicodeDecodeError
        raise ResultFormatError(f"not valid JSON: {error}") from None
    return RunResult.from_json(data)


def is_finished(path: Path) -> bool:
    """
    Whether ``path`` holds a finished result (a partial write never does: writes are atomic).

    :param path: A result file, which may not exist
    :return: Whether :func:`read_result` reads it
    """
    try:
        read_result(path)
    except (OSError, ResultFormatError):
        return False
    return True


def write_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """
    Write JSON to a temporary file in the same folder, then rename it over ``path``.

    The file gets the permissions of an ordinary new file: ``0o644`` minus the process's umask.

    :param path: The file to write
    :param data: The JSON
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1)
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # os.open applies the umask to the mode, as open() does for a new file (tempfile's files are 0o600).
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    renamed = False
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        renamed = True
    finally:
        if not renamed:
            temporary.unlink(missing_ok=True)


class ResultStore:
    """
    A folder of result files, one per run, named after the run (:func:`result_path`).

    :param folder: The folder (created on the first write)
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, spec: RunSpec) -> Path:
        """:return: The result file of ``spec``"""
        return result_path(self.folder, spec)

    def is_finished(self, spec: RunSpec) -> bool:
        """:return: Whether ``spec``'s file holds a finished result"""
        return is_finished(self.path(spec))

    def write(self, spec: RunSpec, result: RunResult) -> Path:
        """
        Write ``spec``'s result atomically.

        :return: The file written
        """
        path = self.path(spec)
        write_atomically(path, result.to_json())
        return path

    def load(self) -> LoadedResults:
        """
        Read every ``*.json`` file of the folder; warn (:class:`UnreadableResultWarning`) about each that is not a
        finished result.

        :return: The finished results, and the other files with the reason each was not read
        """
        results = []
        unreadable = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                results.append(read_result(path))
            except OSError as error:
                reason = f"cannot read it: {error.strerror or error}"
            except ResultFormatError as error:
                reason = str(error)
            else:
                continue
            unreadable.append(UnreadableResult(path, reason))
            warnings.warn(f"{path}: not a finished result, left out ({reason})", UnreadableResultWarning, stacklevel=2)
        return LoadedResults(tuple(results), tuple(unreadable))
