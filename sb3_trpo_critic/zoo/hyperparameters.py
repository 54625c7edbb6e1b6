"""Hyperparameter files in rl-zoo3's format: where they are, how an entry is chosen, how it is preprocessed."""

from __future__ import annotations

import argparse
import contextlib
import copy
import difflib
import inspect
import io
import os
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import yaml
from rl_zoo3.exp_manager import ExperimentManager
from rl_zoo3.utils import ALGOS

from sb3_trpo_critic.zoo.registry import ALGO_NAME, ALGORITHMS, register

#: TRPOCritic's hyperparameter file, shipped as package data (``hyperparams/trpo_critic.yml`` links to it).
HYPERPARAMS_FILE = Path(__file__).resolve().parent.parent / "hyperparams" / f"{ALGO_NAME}.yml"


class ZooError(ValueError):
    """A user error (unknown environment, missing entry, malformed file), described in one line."""


@dataclass(frozen=True)
class ZooHyperparameters:
    """
    The hyperparameters of one algorithm on one environment, preprocessed as rl-zoo3's ``train`` does.

    Build the algorithm with ``ALGOS[algo](policy, env, **model_kwargs)`` on a vectorized env of
    ``n_envs`` copies of ``env_id`` made with ``env_kwargs`` and wrapped by ``env_wrapper`` (per
    copy), then ``vec_env_wrapper``, ``VecNormalize(**normalize_kwargs)`` if ``normalize`` and
    ``VecFrameStack(frame_stack)`` if ``frame_stack``, then ``VecTransposeImage`` for channel-last
    images, in that order (as rl-zoo3 does: :func:`sb3_trpo_critic.zoo.envs.make_zoo_vec_env`).

    :param algo: rl-zoo3's name of the algorithm (``trpo_critic``, ``ppo``, ``trpo``, ...)
    :param env_id: The environment the hyperparameters are for
    :param entry: The key of the entry used in the file (``env_id``, its ``-v4`` version,
        ``atari`` or ``default``)
    :param rule: The rule of :func:`select_entry` that chose it (a key of :data:`ENTRY_RULES`)
    :param source: Path of the hyperparameter file
    :param note: Empty if the file has an entry for ``env_id``; otherwise which entry was used instead
    :param n_timesteps: Training budget, in environment steps
    :param n_envs: Number of parallel environments
    :param normalize: Whether rl-zoo3 wraps the environment in ``VecNormalize``
    :param normalize_kwargs: Keyword arguments of ``VecNormalize`` (rl-zoo3 adds the algorithm's ``gamma``)
    :param policy: The policy, as written in the file (an alias such as ``MlpPolicy``, or a dotted
        path, which :func:`rl_zoo3.utils.get_class_by_name` imports)
    :param model_kwargs: Keyword arguments of the algorithm's constructor, without ``policy`` and
        ``env``: schedules (``lin_0.001``, numbers) made callables, ``policy_kwargs`` evaluated,
        action noise built
    :param env_kwargs: Keyword arguments of the environment's constructor
    :param env_wrapper: A callable wrapping each environment (rl-zoo3's ``env_wrapper``), or ``None``
    :param vec_env_wrapper: A callable wrapping the vectorized environment, or ``None``
    :param frame_stack: Number of stacked frames (``VecFrameStack``), or ``None``
    :param callbacks: Training callbacks of the entry (rl-zoo3's ``callback``)
    :param raw: The entry as written in the file (after YAML merge keys), unprocessed
    """

    algo: str
    env_id: str
    entry: str
    rule: str
    source: str
    note: str
    n_timesteps: int
    n_envs: int
    normalize: bool
    normalize_kwargs: dict[str, Any]
    policy: str
    model_kwargs: dict[str, Any]
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    env_wrapper: Callable[[gym.Env], gym.Env] | None = None
    vec_env_wrapper: Callable[..., Any] | None = None
    frame_stack: int | None = None
    callbacks: list[Any] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def hyperparameter_file(algo: str) -> Path:
    """
    The default hyperparameter file of an algorithm: this package's for ``trpo_critic`` and
    ``recurrent_trpo_critic``, rl-zoo3's otherwise.

    :param algo: rl-zoo3's name of the algorithm
    :return: The path of the file (rl-zoo3's ``hyperparams/{algo}.yml`` may not exist for every algorithm)
    """
    if algo in ALGORITHMS:
        return HYPERPARAMS_FILE.with_name(f"{algo}.yml")
    import rl_zoo3

    package = Path(rl_zoo3.__file__).resolve().parent
    # As rl_zoo3.exp_manager.ExperimentManager: the package's hyperparams/, else the repository root's.
    folder = package / "hyperparams" if (package / "hyperparams").is_dir() else package.parent / "hyperparams"
    return folder / f"{algo}.yml"


def read_hyperparameter_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """
    Read a hyperparameter file in rl-zoo3's YAML format and check its shape.

    :param path: A ``.yml`` or ``.yaml`` file
    :return: The entries, by key (environment id, ``atari`` or ``default``)
    :raises ZooError: if the file is missing, is not valid YAML, or is not a mapping of mappings
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ZooError(f"hyperparameter file not found: {path}") from None
    except OSError as exc:
        raise ZooError(f"cannot read hyperparameter file {path}: {exc.strerror or exc}") from None
    try:
        table = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ZooError(f"malformed YAML in {path}{where}: {' '.join(str(problem).split())}") from None
    if not isinstance(table, dict) or not table:
        raise ZooError(f"{path} must map environment ids to hyperparameters, got {type(table).__name__}")
    for key, entry in table.items():
        if not isinstance(entry, dict):
            raise ZooError(f"entry {key!r} of {path} must be a mapping of hyperparameters, got {entry!r}")
    return table


def is_registered(env_id: str) -> bool:
    """Whether ``env_id`` is in Gymnasium's registry."""
    return env_id in gym.envs.registry


def check_registered(env_id: str) -> None:
    """
    :raises ZooError: naming the closest registered id if ``env_id`` is not in Gymnasium's registry
    """
    if not is_registered(env_id):
        close = difflib.get_close_matches(env_id, list(gym.envs.registry), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ZooError(f"environment {env_id!r} is not registered in gymnasium{hint}")


def _is_mujoco(env_id: str) -> bool:
    return is_registered(env_id) and "mujoco" in str(gym.spec(env_id).entry_point)


#: The rules by which :func:`select_entry` chooses an entry, in the order it tries them.
ENTRY_RULES = {
    "exact": "the file has an entry for the environment",
    "mujoco-v4": "a -v5 MuJoCo environment without an entry uses the -v4 entry of the same environment",
    "atari": "an Atari environment without an entry uses the 'atari' entry",
    "default": "an environment without an entry uses the 'default' entry",
    "constructor-defaults": "no entry: the algorithm's constructor defaults (MlpPolicy, one env, no VecNormalize)",
}


class EntryChoice(NamedTuple):
    """The entry :func:`select_entry` chose."""

    #: the key of the entry in the file
    entry: str
    #: the rule that chose it (a key of :data:`ENTRY_RULES`)
    rule: str
    #: empty if the key is the environment's id; otherwise which entry was used instead
    note: str


def entry_candidates(env_id: str) -> list[tuple[str, str]]:
    """
    The keys :func:`select_entry` tries for an environment, in order, each with its rule.

    :param env_id: The environment
    :return: ``(key, rule)`` pairs: ``env_id``; for a ``-v5`` MuJoCo id, the ``-v4`` id; ``atari``
        for an Atari environment; ``default``
    """
    candidates = [(env_id, "exact")]
    if env_id.endswith("-v5") and _is_mujoco(env_id):
        candidates.append((env_id[: -len("-v5")] + "-v4", "mujoco-v4"))
    if is_registered(env_id) and ExperimentManager.is_atari(env_id):
        candidates.append(("atari", "atari"))
    candidates.append(("default", "default"))
    return candidates


def select_entry(table: Mapping[str, Any], env_id: str, *, algo: str, origin: str) -> EntryChoice:
    """
    Choose the entry of a hyperparameter file for an environment, as rl-zoo3 does, plus a MuJoCo fallback:
    the first key of :func:`entry_candidates` that the file has. The one rule of this package: the
    ``sb3-trpo-critic`` command and the comparison runner both use it.

    In order: ``env_id``; for a ``-v5`` MuJoCo id, the same environment's ``-v4`` entry (rl-zoo3
    has no v5 entries for most algorithms, and its ``train`` alone would take ``default``); ``atari``
    for an Atari environment; ``default``.

    :param table: The file's entries
    :param env_id: The environment
    :param algo: The algorithm's name, for the note
    :param origin: Who wrote the file, for the note (``rl-zoo3``, ``sb3-trpo-critic``, a path)
    :return: The key of the entry, the rule that chose it, and a note (empty if the key is ``env_id``)
    :raises ZooError: if no entry applies
    """
    for key, rule in entry_candidates(env_id):
        if key in table:
            note = "" if rule == "exact" else f"{origin} has no {env_id} entry for {algo}; used {key}"
            return EntryChoice(key, rule, note)
    raise ZooError(f"{origin} has no {env_id} entry for {algo} and no 'default' entry")


#: Hyperparameters of this package's algorithms that a zoo file may write as a linear schedule, ``lin_<start>``
#: (from ``start`` at the beginning of training to 0 at the end), as rl-zoo3 does for ``learning_rate``.
SCHEDULE_KEYS = ("target_kl",)


def preprocess_schedules(algo: str, hyperparams: dict[str, Any]) -> dict[str, Any]:
    """
    Make ``lin_<start>`` values of :data:`SCHEDULE_KEYS` rl-zoo3's linear schedules, in place (rl-zoo3 itself
    converts only its own keys). Numbers stay numbers; other algorithms' entries are left as they are.

    :param algo: rl-zoo3's name of the algorithm
    :param hyperparams: an entry after rl-zoo3's preprocessing
    :return: ``hyperparams``
    :raises ZooError: for a string that is not ``lin_<number>``
    """
    from rl_zoo3.utils import SimpleLinearSchedule

    if algo not in ALGORITHMS:
        return hyperparams
    for key in SCHEDULE_KEYS:
        value = hyperparams.get(key)
        if not isinstance(value, str):
            continue
        kind, _, start = value.partition("_")
        try:
            if kind != "lin":
                raise ValueError(value)
            hyperparams[key] = SimpleLinearSchedule(float(start))
        except ValueError:
            raise ZooError(f"{key} must be a number or a linear schedule lin_<start> (e.g. lin_0.03), got {value!r}") from None
    return hyperparams


#: Keyword arguments that rl-zoo3 gives every algorithm itself, whatever the entry says.
PASSED_BY_ZOO = frozenset({"env", "tensorboard_log", "seed", "verbose", "device"})


def check_model_kwargs(algo: str, model_kwargs: Mapping[str, Any], where: str) -> None:
    """
    Check that the algorithm's constructor takes every key of a preprocessed entry.

    :param algo: rl-zoo3's name of the algorithm
    :param model_kwargs: the entry's keyword arguments of the constructor (``policy`` included or not)
    :param where: where the keys come from, for the message
    :raises ZooError: naming the first unknown key, and the closest known one
    """
    algorithm = ALGOS[algo]
    parameters = inspect.signature(algorithm.__init__).parameters
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    accepted = set(parameters) - {"self", *PASSED_BY_ZOO}
    unknown = sorted(set(model_kwargs) - accepted)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(accepted), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ZooError(f"{where}: {algo} ({algorithm.__name__}) has no hyperparameter {unknown[0]!r}{hint}")


def load_zoo_hyperparameters(algo: str, env_id: str, overrides: Mapping[str, Any] | None = None) -> ZooHyperparameters:
    """
    The hyperparameters rl-zoo3 would train ``algo`` on ``env_id`` with, preprocessed by rl-zoo3's own code.

    ``trpo_critic`` reads this package's ``trpo_critic.yml``; rl-zoo3's built-in algorithms
    (``ppo``, ``trpo``, ...) read rl-zoo3's ``hyperparams/{algo}.yml``. The entry is chosen by
    :func:`select_entry`: unlike rl-zoo3's ``train``, a ``-v5`` MuJoCo environment without an
    entry uses its ``-v4`` entry (and ``note`` says so) rather than ``default``.

    The entry goes through ``ExperimentManager._preprocess_hyperparams`` (schedules,
    normalization, ``policy_kwargs``, wrappers, callbacks) and, if it has ``noise_type``,
    ``_preprocess_action_noise``; nothing is trained, no log folder is created.

    :param algo: rl-zoo3's name of the algorithm
    :param env_id: A Gymnasium environment id (it must be registered)
    :param overrides: Keys that replace or add to the entry before preprocessing, written as in the
        file (``{"n_envs": 8, "policy_kwargs": "dict(log_std_init=-1)"}``), like rl-zoo3's
        ``--hyperparams``; ``raw`` is the entry after them
    :return: The preprocessed hyperparameters
    :raises ZooError: for an unknown algorithm or environment, or a file without a matching entry
    """
    register()
    if algo not in ALGOS:
        raise ZooError(f"unknown algorithm {algo!r}; rl-zoo3 knows {', '.join(sorted(ALGOS))}")
    check_registered(env_id)
    source = hyperparameter_file(algo)
    table = read_hyperparameter_file(source)
    origin = "sb3-trpo-critic" if algo in ALGORITHMS else "rl-zoo3"
    entry, rule, note = select_entry(table, env_id, algo=algo, origin=origin)
    raw = copy.deepcopy(table[entry])
    raw.update(copy.deepcopy(dict(overrides or {})))
    if "policy" not in raw or "n_timesteps" not in raw:
        raise ZooError(f"entry {entry!r} of {source} needs 'policy' and 'n_timesteps'")
    return _preprocess_entry(algo, env_id, raw, EntryChoice(entry, rule, note), source, overrides)


#: Training budget of :func:`constructor_defaults` when the overrides give none (rl-zoo3's default budget).
DEFAULT_N_TIMESTEPS = 1_000_000


def constructor_defaults(algo: str, env_id: str, overrides: Mapping[str, Any] | None = None) -> ZooHyperparameters:
    """
    The algorithm with its constructor defaults, as a new user would run it, in the form of an entry:
    ``MlpPolicy``, one environment, no ``VecNormalize``, no constructor argument (no zoo file is read).

    ``entry`` is empty and ``rule`` is ``constructor-defaults``. The result is what
    ``ALGOS[algo]("MlpPolicy", env)`` builds on ``gym.make(env_id)``, seeded; ``overrides`` (keys
    written as in a zoo file, e.g. ``{"target_kl": 0.02}``) change it, for experiments on the defaults.

    :param algo: rl-zoo3's name of the algorithm
    :param env_id: A Gymnasium environment id (it must be registered)
    :param overrides: Keys to set, as in a zoo entry
    :return: The preprocessed hyperparameters
    :raises ZooError: for an unknown algorithm or environment
    """
    register()
    if algo not in ALGOS:
        raise ZooError(f"unknown algorithm {algo!r}; rl-zoo3 knows {', '.join(sorted(ALGOS))}")
    check_registered(env_id)
    raw: dict[str, Any] = {"policy": "MlpPolicy", "n_timesteps": DEFAULT_N_TIMESTEPS, **copy.deepcopy(dict(overrides or {}))}
    choice = EntryChoice("", "constructor-defaults", "no zoo entry: the constructor's defaults")
    return _preprocess_entry(algo, env_id, raw, choice, hyperparameter_file(algo), overrides)


def _preprocess_entry(
    algo: str,
    env_id: str,
    raw: dict[str, Any],
    choice: EntryChoice,
    source: Path,
    overrides: Mapping[str, Any] | None,
) -> ZooHyperparameters:
    """Preprocess an entry (``raw``, overrides applied) with rl-zoo3's own code; see :func:`load_zoo_hyperparameters`."""
    entry, rule, note = choice
    manager = ExperimentManager(
        argparse.Namespace(),
        algo,
        env_id,
        log_folder=os.devnull,
        n_timesteps=0,  # read n_timesteps from the entry
        verbose=0,
        config=str(source),
    )
    with contextlib.redirect_stdout(io.StringIO()):
        hyperparams, env_wrapper, callbacks, vec_env_wrapper = manager._preprocess_hyperparams(copy.deepcopy(raw))
        preprocess_schedules(algo, hyperparams)
        if hyperparams.get("noise_type") is not None:
            action_space = gym.make(env_id, **manager.env_kwargs).action_space
            hyperparams = manager._preprocess_action_noise(
                hyperparams,
                {},
                types.SimpleNamespace(action_space=action_space),  # type: ignore[arg-type]
            )
    hyperparams.pop("policy")
    check_model_kwargs(algo, hyperparams, where=f"entry {entry!r} of {source}" + (" with overrides" if overrides else ""))
    return ZooHyperparameters(
        algo=algo,
        env_id=env_id,
        entry=entry,
        rule=rule,
        source=str(source),
        note=note,
        n_timesteps=int(manager.n_timesteps),
        n_envs=int(manager.n_envs),
        normalize=bool(manager.normalize),
        normalize_kwargs=dict(manager.normalize_kwargs),
        policy=str(raw["policy"]),
        model_kwargs=hyperparams,
        env_kwargs=dict(manager.env_kwargs),
        env_wrapper=env_wrapper,
        vec_env_wrapper=vec_env_wrapper,
        frame_stack=manager.frame_stack,
        callbacks=list(callbacks),
        raw=raw,
    )
