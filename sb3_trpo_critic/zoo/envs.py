"""The environments of a zoo entry, built by rl-zoo3's own ``ExperimentManager.create_envs``."""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

import gymnasium as gym
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.vec_env import VecEnv

from sb3_trpo_critic.extras import environment_dependency_message
from sb3_trpo_critic.zoo.hyperparameters import ZooHyperparameters


def make_zoo_vec_env(zoo: ZooHyperparameters, seed: int, *, eval_env: bool = False, n_envs: int | None = None) -> VecEnv:
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
    :return: The vectorized, wrapped environment
    :raises gymnasium.error.DependencyNotInstalled: For a MuJoCo or Box2D environment without its dependency, naming
        this package's extra (``pip install "sb3-trpo-critic[mujoco]"``)
    """
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
