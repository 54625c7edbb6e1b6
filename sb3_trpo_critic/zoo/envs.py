"""The environments of a zoo entry, built by rl-zoo3's own ``ExperimentManager.create_envs``, on gymnasium
(``DummyVecEnv``) or on EnvPool (:mod:`sb3_trpo_critic.envpool`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import rl_zoo3.exp_manager
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.vec_env import VecEnv

from sb3_trpo_critic.envpool import check_vec_env
from sb3_trpo_critic.extras import environment_dependency_message
from sb3_trpo_critic.zoo.hyperparameters import ZooHyperparameters


def make_envpool_like_make_vec_env(
    gym_id: str,
    env_id: Any = None,
    n_envs: int = 1,
    seed: int | None = None,
    start_index: int = 0,
    monitor_dir: str | None = None,
    wrapper_class: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    vec_env_cls: Any = None,
    vec_env_kwargs: dict[str, Any] | None = None,
    monitor_kwargs: dict[str, Any] | None = None,
    wrapper_kwargs: dict[str, Any] | None = None,
) -> VecEnv:
    """
    SB3's ``make_vec_env``, as ``ExperimentManager.create_envs`` calls it, building the environment on EnvPool
    (:func:`~sb3_trpo_critic.envpool.make_envpool_vec_env`) instead: the same copies, seeds, ``env_kwargs`` and
    ``monitor_kwargs``; the ``Monitor`` log in one file, ``<monitor_dir>/envpool.monitor.csv``.

    :param gym_id: The environment's gymnasium id (``env_id`` is rl-zoo3's function that makes it with gymnasium)
    :param env_id: Ignored
    :param n_envs: Number of copies
    :param seed: Seed of the first copy
    :param start_index: Must be 0
    :param monitor_dir: Folder of the ``VecMonitor`` log, or ``None``
    :param wrapper_class: Must be ``None`` (the entry's ``env_wrapper``: a gymnasium wrapper)
    :param env_kwargs: The environment's options
    :param vec_env_cls: Ignored (rl-zoo3's ``DummyVecEnv`` or ``SubprocVecEnv``)
    :param vec_env_kwargs: Must be empty
    :param monitor_kwargs: Keyword arguments of the ``VecMonitor`` (``info_keywords``)
    :param wrapper_kwargs: Ignored, without ``wrapper_class``
    :return: The vectorized environment, in a ``VecMonitor``
    :raises sb3_trpo_critic.envpool.EnvPoolError: For what EnvPool cannot build
    """
    from sb3_trpo_critic.envpool import EnvPoolError, make_envpool_vec_env

    if wrapper_class is not None:
        name = _wrapper_name(wrapper_class)
        raise EnvPoolError(
            f"{gym_id}: the zoo entry's env_wrapper {name} wraps a gymnasium.Env, and EnvPool's environments are not "
            "gymnasium.Env instances; use the dummy vec_env, or an entry without env_wrapper"
        )
    if vec_env_kwargs or start_index:
        raise EnvPoolError(f"{gym_id}: the EnvPool engine takes no vec_env_kwargs ({vec_env_kwargs}) or start_index")
    return make_envpool_vec_env(gym_id, n_envs, seed, env_kwargs, monitor_dir=monitor_dir, monitor_kwargs=monitor_kwargs)


def _wrapper_name(wrapper_class: Any) -> str:
    """The wrappers' names, also of rl-zoo3's ``get_wrapper_class`` function (which holds them in its closure)."""
    for cell in getattr(wrapper_class, "__closure__", None) or ():
        contents = cell.cell_contents
        if isinstance(contents, list) and contents and all(isinstance(item, type) for item in contents):
            return ", ".join(item.__name__ for item in contents)
    return str(getattr(wrapper_class, "__qualname__", repr(wrapper_class)))


@contextlib.contextmanager
def vec_env_engine(manager: ExperimentManager, vec_env: str) -> Iterator[None]:
    """
    While inside, ``manager.create_envs`` builds its environments on the engine ``vec_env``: for ``envpool``,
    rl-zoo3's call of ``make_vec_env`` is replaced by :func:`make_envpool_like_make_vec_env`, and everything
    else (``vec_env_wrapper``, ``VecNormalize``, frame stacking, image transposition) stays rl-zoo3's.

    :param manager: The experiment manager (its ``env_name`` is the environment)
    :param vec_env: One of :data:`~sb3_trpo_critic.envpool.VEC_ENVS`
    """
    if check_vec_env(vec_env) == "dummy":
        yield
        return
    gym_id = manager.env_name.gym_id
    original = rl_zoo3.exp_manager.make_vec_env

    def make_vec_env(*args: Any, **kwargs: Any) -> VecEnv:
        return make_envpool_like_make_vec_env(gym_id, *args, **kwargs)

    rl_zoo3.exp_manager.make_vec_env = make_vec_env  # type: ignore[assignment]
    try:
        yield
    finally:
        rl_zoo3.exp_manager.make_vec_env = original


def make_zoo_vec_env(
    zoo: ZooHyperparameters, seed: int, *, eval_env: bool = False, n_envs: int | None = None, vec_env: str = "dummy"
) -> VecEnv:
    """
    Build the training or the evaluation environment of a zoo entry, as rl-zoo3's ``train`` builds it.

    An :class:`~rl_zoo3.exp_manager.ExperimentManager` is configured from ``zoo`` and its
    ``create_envs(n_envs, eval_env=eval_env, no_log=True)`` builds the environment, so the order
    and the options of the wrappers are rl-zoo3's: ``n_envs`` copies of ``zoo.env_id`` made with
    ``zoo.env_kwargs`` (each in a ``Monitor`` with the entry's ``monitor_kwargs``, then
    ``zoo.env_wrapper``) in a ``DummyVecEnv`` seeded with ``seed``, ``seed + 1``, ...; then
    ``zoo.vec_env_wrapper``; ``VecNormalize(**zoo.normalize_kwargs)`` if ``zoo.normalize`` (for the
    evaluation environment with ``training=False, norm_reward=False``); ``VecFrameStack`` if
    ``zoo.frame_stack``; ``VecTransposeImage`` if the observations are channel-last images.

    With ``vec_env="envpool"``, the ``n_envs`` copies are EnvPool's
    (:func:`~sb3_trpo_critic.envpool.make_envpool_vec_env`: seeded the same way, ``zoo.env_kwargs`` passed
    where EnvPool takes them, in a ``VecMonitor`` with the entry's ``monitor_kwargs``) and the wrappers above
    them are the same; an entry with an ``env_wrapper`` (a gymnasium wrapper) cannot be built on EnvPool.

    Unlike rl-zoo3's ``train``, no ``Monitor`` log files are written and no ``vecnormalize.pkl``
    of an earlier run is loaded (rl-zoo3 looks for one in ``<env_id>/`` under the working folder
    when it is not continuing a trained agent).

    The entry's callbacks (``zoo.callbacks``) are not part of the environment: pass them to
    ``learn()``.

    :param zoo: The hyperparameters of one algorithm on one environment
        (:func:`~sb3_trpo_critic.zoo.load_zoo_hyperparameters`)
    :param seed: Seed of the first copy of the environment
    :param eval_env: Build the evaluation environment instead of the training one
    :param n_envs: Number of copies; default: ``zoo.n_envs`` for training, 1 for evaluation
        (rl-zoo3's ``n_eval_envs``)
    :param vec_env: The engine, one of :data:`~sb3_trpo_critic.envpool.VEC_ENVS`: ``dummy`` (gymnasium) or ``envpool``
    :return: The vectorized, wrapped environment
    :raises gymnasium.error.DependencyNotInstalled: For a MuJoCo or Box2D environment without its dependency, naming
        this package's extra (``pip install "sb3-trpo-critic[mujoco]"``)
    :raises sb3_trpo_critic.envpool.EnvPoolError: With ``vec_env="envpool"``, for an environment, option or
        wrapper EnvPool does not have
    :raises sb3_trpo_critic.extras.MissingExtraError: With ``vec_env="envpool"``, without EnvPool
    """
    check_vec_env(vec_env)
    if n_envs is None:
        n_envs = 1 if eval_env else zoo.n_envs
    manager = ExperimentManager(
        argparse.Namespace(),
        zoo.algo,
        zoo.env_id,
        log_folder=os.devnull,  # nothing is written: create_envs(no_log=True) makes no Monitor files
        seed=seed,
        verbose=0,
        env_kwargs=dict(zoo.env_kwargs),
        config=zoo.source,
    )
    manager.n_envs = zoo.n_envs
    manager.normalize = zoo.normalize
    manager.normalize_kwargs = dict(zoo.normalize_kwargs)
    manager.frame_stack = zoo.frame_stack  # type: ignore[assignment]  # rl-zoo3 infers its type from "= None"
    manager.env_wrapper = zoo.env_wrapper
    manager.vec_env_wrapper = zoo.vec_env_wrapper
    manager.monitor_kwargs = _monitor_kwargs(zoo.raw)
    with tempfile.TemporaryDirectory(prefix="zoo-env-") as empty:
        # rl-zoo3 loads <dirname(trained_agent)>/<env_id>/vecnormalize.pkl when that file exists; with no
        # trained agent that is a path relative to the working folder. Point it at an empty folder instead.
        manager.trained_agent = os.path.join(empty, "no-trained-agent.zip")
        try:
            with vec_env_engine(manager, vec_env):
                return manager.create_envs(n_envs, eval_env=eval_env, no_log=True)
        except gym.error.DependencyNotInstalled as error:  # MuJoCo or Box2D: name this package's extra
            message = environment_dependency_message(error, zoo.env_id)
            if message is None:
                raise
            raise gym.error.DependencyNotInstalled(message) from error


def _monitor_kwargs(raw: dict[str, Any]) -> dict[str, Any]:
    """The entry's ``monitor_kwargs``, evaluated when written as a string, as ``_preprocess_hyperparams`` does."""
    value = raw.get("monitor_kwargs") or {}
    if isinstance(value, str):
        value = eval(value)  # as rl-zoo3 evaluates it, on the hyperparameter file's text
    return dict(value)
