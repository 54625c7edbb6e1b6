"""
The timed part of a training for the throughput benchmark (:mod:`sb3_trpo_critic.benchmarks.throughput`), and the
rate of an environment stack alone.

Every training is timed the same way: a warm-up of one rollout and one update, untimed (JIT compilation, torch's
first-call costs, allocations), then the timed training of the requested env steps, continuing from the warm-up. For
an SB3-style model (:func:`time_learn`) that is ``learn(n_steps * n_envs)``, then
``learn(timesteps, reset_num_timesteps=False)`` with ``collect_rollouts`` (rollout) and ``train()`` (train) timed;
the rest of the timed ``learn()`` is "other". Tianshou's trainer is warmed up and timed the same way
(:mod:`sb3_trpo_critic.benchmarks.peers`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Phases:
    """
    The timed part of one training.

    :param timesteps: Env steps of the timed part (the warm-up's are not counted)
    :param seconds: Its wall-clock seconds
    :param rollout_seconds: Of which collecting rollouts
    :param train_seconds: Of which updating
    :param warmup_timesteps: Env steps of the untimed warm-up before it
    """

    timesteps: int
    seconds: float
    rollout_seconds: float
    train_seconds: float
    warmup_timesteps: int = 0


def add_time(clock: dict[str, float], name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """
    :param clock: Seconds by phase, added to
    :param name: The phase
    :param method: A callable (a bound method)
    :return: The callable, adding the seconds of each call to ``clock[name]``
    """

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            clock[name] += time.perf_counter() - start

    return timed


def time_learn(model: Any, timesteps: int) -> Phases:
    """
    Warm up an SB3-style on-policy model (one rollout and one update: ``learn(n_steps * n_envs)``), then time
    ``learn(timesteps, reset_num_timesteps=False)`` and its phases (``collect_rollouts``, ``train()``).

    :param model: An on-policy model of SB3's API (``n_steps``, ``collect_rollouts``, ``train``), on its env
    :param timesteps: Env steps of the timed part
    :return: The timed part's phases
    """
    warmup = model.n_steps * model.n_envs
    model.learn(total_timesteps=warmup)
    warmup = int(model.num_timesteps)
    clock = {"rollout": 0.0, "train": 0.0}
    model.collect_rollouts = add_time(clock, "rollout", model.collect_rollouts)
    model.train = add_time(clock, "train", model.train)
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps, reset_num_timesteps=False)
    seconds = time.perf_counter() - start
    return Phases(int(model.num_timesteps) - warmup, seconds, clock["rollout"], clock["train"], warmup)


def random_actions(venv: Any, steps: int, seed: int) -> np.ndarray:
    """
    :param venv: A vectorized environment
    :param steps: Steps of the whole vectorized environment
    :param seed: Seed of the action space's sampler
    :return: ``steps`` batches of ``num_envs`` actions sampled from its action space
    """
    venv.action_space.seed(seed)
    return np.array([[venv.action_space.sample() for _ in range(venv.num_envs)] for _ in range(steps)])


def random_action_seconds(venv: Any, timesteps: int, seed: int = 0) -> tuple[int, float]:
    """
    Step a vectorized environment with random actions (sampled beforehand, untimed) for at least ``timesteps`` env
    steps, after a reset, and time the steps.

    :param venv: A vectorized environment (SB3's ``VecEnv``)
    :param timesteps: Env steps (rounded up to a multiple of ``num_envs``)
    :param seed: Seed of the actions
    :return: The env steps taken and their seconds
    """
    steps = -(-timesteps // venv.num_envs)
    actions = random_actions(venv, steps, seed)
    venv.reset()
    start = time.perf_counter()
    for action in actions:
        venv.step(action)
    return steps * venv.num_envs, time.perf_counter() - start
