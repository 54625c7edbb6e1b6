"""
EnvPool as an optional engine of vectorized environments (the ``envpool`` extra: ``pip install
"sb3-trpo-critic[envpool]"``).

:class:`EnvPoolVecEnv` runs ``num_envs`` copies of an environment in `EnvPool <https://envpool.readthedocs.io>`_
(C++ environments stepped in a thread pool) behind Stable-Baselines3's ``VecEnv`` contract, so that SB3's
algorithms, ``VecNormalize``, ``evaluate_policy`` and :class:`~sb3_trpo_critic.TRPOCritic` use it unchanged;
:func:`make_envpool_vec_env` builds it in a ``VecMonitor`` (:class:`EnvPoolMonitor`: episode statistics as
``Monitor``'s) as ``make_vec_env`` builds a ``DummyVecEnv`` of ``Monitor`` s.

What the adapter guarantees (the tests in ``tests/test_envpool.py`` check each):

- SB3's automatic reset: when a copy's episode ends at a step, that step returns the first observation of
  its next episode, ``dones[i]`` is ``True``, ``infos[i]["terminal_observation"]`` is the episode's last
  observation and ``infos[i]["TimeLimit.truncated"]`` is ``truncated and not terminated``. (EnvPool itself
  returns the last observation and resets the copy on its *next* step, ignoring that step's action; the
  adapter resets the finished copies at once instead, so every step of every copy uses its action.)
- The time limit is applied by the adapter, as gymnasium's ``TimeLimit`` applies it: an episode is truncated
  after ``max_episode_steps`` steps (an ``env_kwargs`` key, as in ``gym.make``; default: EnvPool's, which is
  gymnasium's for the MuJoCo, classic-control and Box2D environments), and an episode that terminates on its
  last step counts as terminated (EnvPool's own limit reports it as truncated only).
- Seeding as SB3's ``DummyVecEnv``: copy ``i`` is seeded with ``seed + i`` (taken modulo ``2**31``: EnvPool
  takes 32-bit seeds); :meth:`~stable_baselines3.common.vec_env.VecEnv.seed` takes effect at the next
  :meth:`reset`, which then builds the pool again with those seeds, so ``seed(s); reset()`` starts exactly
  as a new adapter with ``seed=s`` does. A :meth:`reset` without a new seed goes on with each copy's random
  stream, as gymnasium's ``reset()`` without a seed does. The same seed gives the same episodes on the same
  EnvPool version (whatever ``num_threads``); it does *not* give gymnasium's episodes: EnvPool's MuJoCo
  environments are its own implementation, with their own random streams.
- Spaces are gymnasium spaces: observations of EnvPool's dtype (``float64`` for MuJoCo, as gymnasium's), a
  ``Box`` action space in ``float32`` as gymnasium's MuJoCo and Box2D environments have it (the actions are
  given to EnvPool in its dtype); rewards are ``float32``, dones ``bool``.
- ``infos[i]`` holds EnvPool's per-copy info values (e.g. ``x_velocity``), fewer than gymnasium's for some
  environments.

Not supported (a clear error says so): rendering (``render_mode``, :meth:`render`), reset ``options``,
gymnasium wrappers (``wrapper_class``; ``VecEnvWrapper`` s apply as usual), per-copy attributes and methods
(:meth:`get_attr` answers only ``render_mode``), EnvPool's asynchronous mode, multi-player and dict-action
environments. This module imports without EnvPool; building an environment needs it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from sb3_trpo_critic.extras import check_extra

__all__ = [
    "ENVPOOL_EXTRA",
    "VEC_ENVS",
    "EnvPoolError",
    "EnvPoolMonitor",
    "EnvPoolVecEnv",
    "check_vec_env",
    "envpool_ids",
    "make_envpool_vec_env",
]

#: The extra that installs EnvPool.
ENVPOOL_EXTRA = "envpool"

#: The engines of vectorized environments that the zoo environments (:func:`sb3_trpo_critic.zoo.make_zoo_vec_env`),
#: the comparison runner and the ``sb3-trpo-critic train`` command choose from (``vec_env``, ``--vec-env``):
#: ``dummy`` (the default: gymnasium's environments in SB3's ``DummyVecEnv``, as rl-zoo3 builds them) and
#: ``envpool`` (EnvPool's, :class:`EnvPoolVecEnv`).
VEC_ENVS = ("dummy", "envpool")


def check_vec_env(vec_env: str) -> str:
    """
    :param vec_env: An engine's name
    :return: It, if it is one of :data:`VEC_ENVS`
    :raises ValueError: Otherwise
    """
    if vec_env not in VEC_ENVS:
        raise ValueError(f"unknown vec_env {vec_env!r}; choose from {', '.join(VEC_ENVS)}")
    return vec_env


#: EnvPool's configuration keys that the adapter sets itself (not taken from ``env_kwargs``).
RESERVED_KEYS = ("num_envs", "batch_size", "seed", "env_seed", "gym_reset_return_info", "max_num_players", "base_path")

#: Info keys of EnvPool that are not per-copy information of the environment.
_INTERNAL_INFO_KEYS = frozenset({"env_id", "players", "elapsed_step"})

#: EnvPool's seeds are 32-bit signed integers.
_SEED_MODULUS = 2**31


class EnvPoolError(gym.error.Error, ValueError):
    """An environment, an option or a call that the EnvPool engine does not support, described in one line."""


def _envpool() -> Any:
    check_extra(ENVPOOL_EXTRA, (ENVPOOL_EXTRA,), needed_by="the EnvPool engine (vec_env='envpool')")
    import envpool

    return envpool


def envpool_ids() -> list[str]:
    """
    :return: The environment ids EnvPool provides, in its order
    :raises MissingExtraError: Without EnvPool
    """
    return list(_envpool().list_all_envs())


def _check_env_id(env_id: str) -> None:
    known = envpool_ids()
    if env_id in known:
        return
    close = difflib.get_close_matches(env_id, known, n=5, cutoff=0.6)
    family = env_id.partition("-v")[0]
    close += [name for name in known if name.partition("-v")[0] == family and name not in close][: max(0, 5 - len(close))]
    hint = f"close EnvPool ids: {', '.join(close)}" if close else "envpool.list_all_envs() lists its ids"
    raise EnvPoolError(
        f"{env_id} has no EnvPool version (the '{ENVPOOL_EXTRA}' extra's engine, envpool "
        f"{getattr(_envpool(), '__version__', '?')}); {hint}; or build it with vec_env='dummy' (gymnasium)"
    )


def _seeds(seed: int | None, num_envs: int) -> list[int]:
    if seed is None:
        seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
    return [(seed + index) % _SEED_MODULUS for index in range(num_envs)]


def _convert_space(space: Any, *, action: bool) -> spaces.Space:
    """EnvPool's space as the gymnasium space SB3 expects (see the module's description)."""
    if isinstance(space, spaces.Dict) or type(space).__name__ == "Dict":
        if action:
            raise EnvPoolError("dict action spaces are not supported by the EnvPool engine")
        return spaces.Dict({key: _convert_space(value, action=False) for key, value in space.spaces.items()})
    if isinstance(space, spaces.Discrete) or type(space).__name__ == "Discrete":
        return spaces.Discrete(int(space.n), start=int(getattr(space, "start", 0)))
    if isinstance(space, spaces.MultiDiscrete) or type(space).__name__ == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(space.nvec))
    if isinstance(space, spaces.Box) or type(space).__name__ == "Box":
        dtype = np.dtype(np.float32) if action and np.issubdtype(space.dtype, np.floating) else np.dtype(space.dtype)
        low, high = np.asarray(space.low), np.asarray(space.high)
        if np.issubdtype(low.dtype, np.floating):
            # EnvPool's Box2D observation spaces have the smallest positive and the largest float as their bounds
            # (C++'s numeric_limits<float>::min() and max()) where they mean none.
            info = np.finfo(low.dtype)
            low = np.where(low == info.tiny, -np.inf, low)
            high = np.where(high == info.max, np.inf, high)
        return spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=space.shape, dtype=dtype)  # type: ignore[arg-type]
    raise EnvPoolError(f"the EnvPool engine does not support the space {space!r}")


def _take(values: Any, index: Any) -> Any:
    """The part of a batch (an array, or a dict of arrays) at ``index``."""
    if isinstance(values, dict):
        return {key: _take(value, index) for key, value in values.items()}
    return values[index]


def _put(target: Any, index: Any, values: Any) -> None:
    if isinstance(target, dict):
        for key in target:
            _put(target[key], index, values[key])
    else:
        target[index] = values


def _as_batch(values: Any, space: spaces.Space) -> Any:
    """A writable copy of a batch of observations, of the observation space's dtype."""
    if isinstance(space, spaces.Dict):
        return {key: _as_batch(values[key], sub) for key, sub in space.spaces.items()}
    return np.array(values, dtype=space.dtype)


def _copy(values: Any) -> Any:
    if isinstance(values, dict):
        return {key: _copy(value) for key, value in values.items()}
    return np.array(values)


class EnvPoolVecEnv(VecEnv):
    """
    ``num_envs`` copies of an EnvPool environment as a Stable-Baselines3 ``VecEnv`` (see the module's description
    for what it guarantees). Without ``Monitor`` statistics: :func:`make_envpool_vec_env` wraps it in a
    ``VecMonitor``.

    :param env_id: An EnvPool id, the gymnasium id of the same environment (``Hopper-v5``)
    :param num_envs: Number of copies
    :param seed: Seed of copy 0, copy ``i`` gets ``seed + i``; ``None``: a random one
    :param env_kwargs: Keys of EnvPool's configuration of the environment (``envpool.make_spec(env_id).config``:
        gymnasium's keyword arguments of the same name, e.g. ``ctrl_cost_weight``, and EnvPool's own, e.g.
        ``num_threads``), and ``max_episode_steps`` as ``gym.make`` takes it
    :raises EnvPoolError: For an id EnvPool does not have (the message lists close ones), a key its
        configuration does not have, ``render_mode``, or an unsupported space
    :raises MissingExtraError: Without EnvPool (``pip install "sb3-trpo-critic[envpool]"``)
    """

    def __init__(self, env_id: str, num_envs: int = 1, seed: int | None = None, env_kwargs: Mapping[str, Any] | None = None):
        envpool = _envpool()
        _check_env_id(env_id)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.env_id = env_id
        kwargs = dict(env_kwargs or {})
        if kwargs.pop("render_mode", None) is not None:
            raise EnvPoolError(f"{env_id}: the EnvPool engine does not render (render_mode); use vec_env='dummy' to render")
        config = envpool.make_spec(env_id).config
        fields = [name for name in config._fields if name not in RESERVED_KEYS]
        unknown = sorted(set(kwargs) - {*fields, "max_episode_steps"})
        if unknown:
            raise EnvPoolError(
                f"{env_id}: EnvPool's version has no option {', '.join(map(repr, unknown))} (env_kwargs); "
                f"it takes {', '.join(fields)}"
            )
        #: The episode length after which the adapter truncates, or ``None`` for none.
        self.max_episode_steps: int | None = None
        limit = kwargs.pop("max_episode_steps", getattr(config, "max_episode_steps", None))
        if limit is not None:
            if "max_episode_steps" not in config._fields:
                raise EnvPoolError(f"{env_id}: EnvPool's version has no time limit to set (max_episode_steps)")
            self.max_episode_steps = int(limit)
            # EnvPool's own limit is never reached: the adapter truncates first, and knows whether the last step terminated.
            kwargs["max_episode_steps"] = self.max_episode_steps + 1
        self._pool_kwargs = kwargs
        self._make = envpool.make_gymnasium
        self._pool: Any = None
        pool = self._build(_seeds(seed, num_envs), num_envs)
        #: The environment's id and time limit, for ``VecMonitor`` (its log file's header) and the reader.
        self.spec = gym.envs.registration.EnvSpec(
            id=env_id, entry_point=None, max_episode_steps=self.max_episode_steps, kwargs=dict(env_kwargs or {})
        )
        observation_space = _convert_space(pool.observation_space, action=False)
        action_space = _convert_space(pool.action_space, action=True)
        self._action_dtype = np.dtype(pool.action_space.dtype)
        self._envpool_version = str(getattr(envpool, "__version__", "?"))
        super().__init__(num_envs, observation_space, action_space)

    def _build(self, seeds: Sequence[int], num_envs: int) -> Any:
        """(Re)build the pool, copy ``i`` seeded with ``seeds[i]``; :return: The pool"""
        if self._pool is not None:
            self._pool.close()
        self._pool = self._make(
            self.env_id, num_envs=num_envs, batch_size=num_envs, seed=[int(seed) for seed in seeds], **self._pool_kwargs
        )
        self._all_ids = np.arange(num_envs, dtype=np.int32)
        return self._pool

    # ------------------------------------------------------------------------------------------
    # Stepping
    # ------------------------------------------------------------------------------------------

    def _infos(self, info: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
        """EnvPool's batched info as one dict per copy (the internal keys left out)."""
        infos: list[dict[str, Any]] = [{} for _ in range(count)]
        for key, value in info.items():
            if key in _INTERNAL_INFO_KEYS or np.ndim(value) == 0 or len(value) != count:
                continue
            items = value.tolist() if np.ndim(value) == 1 else [np.array(item) for item in value]
            for index in range(count):
                infos[index][key] = items[index]
        return infos

    def _in_order(self, ids: np.ndarray, *batches: Any) -> tuple[Any, ...]:
        """The batches in the order of the copies (EnvPool returns them in the order of ``ids``)."""
        if np.array_equal(ids, np.arange(len(ids))):
            return batches
        order = np.argsort(ids)
        return tuple(_take(batch, order) if not isinstance(batch, list) else [batch[i] for i in order] for batch in batches)

    def reset(self) -> VecEnvObs:
        """
        Reset every copy; with seeds set by :meth:`seed`, build the pool again with them first.

        :return: The first observation of each copy
        :raises NotImplementedError: When reset options were set (``set_options``): EnvPool takes none
        """
        if any(self._options):
            raise NotImplementedError(f"{self.env_id}: the EnvPool engine does not take reset options: {self._options}")
        if any(seed is not None for seed in self._seeds):
            seeds = [seed if seed is not None else _seeds(None, 1)[0] for seed in self._seeds]
            self._build([int(seed) % _SEED_MODULUS for seed in seeds], self.num_envs)
        obs, info = self._pool.reset(self._all_ids)
        (obs,) = self._in_order(np.asarray(info["env_id"]), obs)
        self.reset_infos = self._infos(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return _as_batch(obs, self.observation_space)

    def step_async(self, actions: np.ndarray) -> None:
        """Send the actions to EnvPool (copy ``i`` gets ``actions[i]``)."""
        self._pool.send(np.asarray(actions, dtype=self._action_dtype), self._all_ids)

    def step_wait(self) -> VecEnvStepReturn:
        """
        Receive the step, then reset the copies whose episode ended, at once (SB3's automatic reset).

        :return: Observations (of the next episode where one ended), rewards, dones, infos (with
            ``terminal_observation`` and ``TimeLimit.truncated`` where one ended)
        """
        obs, rewards, terminated, truncated, info = self._pool.recv(reset=False, return_info=True)
        ids = np.asarray(info["env_id"])
        infos = self._infos(info, self.num_envs)
        obs, rewards, terminated, truncated, elapsed, infos = self._in_order(
            ids, obs, rewards, terminated, truncated, np.asarray(info["elapsed_step"]), infos
        )
        obs = _as_batch(obs, self.observation_space)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        if self.max_episode_steps is not None:
            truncated = truncated | (elapsed >= self.max_episode_steps)
        dones = terminated | truncated
        timeouts = (truncated & ~terminated).tolist()
        for index in range(self.num_envs):
            infos[index]["TimeLimit.truncated"] = timeouts[index]
        if dones.any():
            finished = np.flatnonzero(dones).astype(np.int32)
            for copy in finished.tolist():
                infos[copy]["terminal_observation"] = _copy(_take(obs, copy))
            reset_obs, reset_info = self._pool.reset(finished)
            reset_ids = np.asarray(reset_info["env_id"])
            reset_infos = self._infos(reset_info, len(reset_ids))
            _put(obs, reset_ids, reset_obs)
            for copy, reset_info_i in zip(reset_ids.tolist(), reset_infos, strict=True):
                self.reset_infos[copy] = reset_info_i
        return obs, np.asarray(rewards, dtype=np.float32), dones, infos

    def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------------------------------------
    # What EnvPool has no equivalent of
    # ------------------------------------------------------------------------------------------

    def _count(self, indices: VecEnvIndices) -> int:
        return len(list(self._get_indices(indices)))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """
        :param attr_name: ``render_mode`` (``None``: the adapter does not render)
        :param indices: Indices of the copies
        :return: The attribute of each copy
        :raises AttributeError: For any other attribute: EnvPool's copies are not Python objects
        """
        if attr_name == "render_mode":
            return [None] * self._count(indices)
        raise AttributeError(
            f"{type(self).__name__} ({self.env_id} on EnvPool) has no per-environment attribute {attr_name!r}: "
            "EnvPool's environments are C++ objects, not gymnasium.Env instances"
        )

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """:raises NotImplementedError: EnvPool's copies have no attributes to set"""
        raise NotImplementedError(f"{type(self).__name__} ({self.env_id} on EnvPool) cannot set {attr_name!r} on its envs")

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """:raises NotImplementedError: EnvPool's copies have no Python methods to call"""
        raise NotImplementedError(f"{type(self).__name__} ({self.env_id} on EnvPool) cannot call {method_name!r} of its envs")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """:return: ``False`` for each copy: no gymnasium wrapper wraps EnvPool's environments"""
        return [False] * self._count(indices)

    def get_images(self) -> Sequence[np.ndarray | None]:
        """:raises NotImplementedError: The adapter does not render"""
        raise NotImplementedError(f"{type(self).__name__} ({self.env_id} on EnvPool) does not render")

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """:raises NotImplementedError: The adapter does not render; use vec_env='dummy' to render"""
        raise NotImplementedError(
            f"{type(self).__name__} ({self.env_id} on EnvPool) does not render; use vec_env='dummy' to render"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id!r}, num_envs={self.num_envs}, envpool {self._envpool_version})"


class EnvPoolMonitor(VecMonitor):
    """
    SB3's ``VecMonitor`` with ``Monitor``'s numbers: each episode's return summed in ``float64`` and given as a
    Python ``float`` rounded to 6 decimals (``VecMonitor`` sums in ``float32``), its length as an ``int``; so
    ``evaluate_policy`` and ``rollout/ep_rew_mean`` get the values a ``DummyVecEnv`` of ``Monitor`` s gives.

    :param venv: The vectorized environment
    :param filename: The log file (``.monitor.csv`` is added), or ``None``
    :param info_keywords: Info keys to record with each episode, as ``Monitor``'s
    """

    def __init__(self, venv: VecEnv, filename: str | None = None, info_keywords: tuple[str, ...] = ()) -> None:
        super().__init__(venv, filename=filename, info_keywords=tuple(info_keywords))
        self.episode_returns = np.zeros(self.num_envs, dtype=np.float64)

    def reset(self) -> VecEnvObs:
        """Reset the environments and the episodes' sums."""
        obs = super().reset()
        self.episode_returns = np.zeros(self.num_envs, dtype=np.float64)
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        """Step, and write each finished episode's statistics as ``Monitor`` does."""
        obs, rewards, dones, infos = super().step_wait()
        for index in np.flatnonzero(dones).tolist():
            episode = infos[index]["episode"]
            episode["r"], episode["l"] = round(float(episode["r"]), 6), int(episode["l"])
        return obs, rewards, dones, infos


def make_envpool_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    monitor_dir: str | None = None,
    monitor_kwargs: Mapping[str, Any] | None = None,
    wrapper_class: Any = None,
) -> VecEnv:
    """
    ``n_envs`` copies of an environment on EnvPool, as SB3's ``make_vec_env`` builds them on gymnasium: an
    :class:`EnvPoolVecEnv` in an :class:`EnvPoolMonitor` (a ``VecMonitor``), which puts SB3's episode statistics
    (``infos[i]["episode"]``: ``r``, ``l``, ``t``) in the info of each episode's last step, as ``Monitor`` does,
    for ``rollout/ep_rew_mean`` and ``evaluate_policy``.

    :param env_id: The gymnasium id (``Hopper-v5``); EnvPool must have an environment of that id
    :param n_envs: Number of copies
    :param seed: Seed of copy 0, copy ``i`` gets ``seed + i`` (as ``make_vec_env``); ``None``: a random one
    :param env_kwargs: Options of the environment (:class:`EnvPoolVecEnv`: EnvPool's configuration keys, and
        ``max_episode_steps``)
    :param monitor_dir: Folder of the ``VecMonitor`` log file (``envpool.monitor.csv``); ``None``: no file
    :param monitor_kwargs: Keyword arguments of the ``VecMonitor`` (``info_keywords``)
    :param wrapper_class: Must be ``None``: gymnasium wrappers cannot wrap EnvPool's environments
    :return: The vectorized environment
    :raises EnvPoolError: For an id EnvPool does not have (the message lists close ones), an option it does not
        take, or a ``wrapper_class``
    :raises MissingExtraError: Without EnvPool (``pip install "sb3-trpo-critic[envpool]"``)
    """
    if wrapper_class is not None:
        name = getattr(wrapper_class, "__qualname__", repr(wrapper_class))
        raise EnvPoolError(
            f"{env_id}: the gymnasium wrapper {name} cannot wrap EnvPool's environments (they are not gymnasium.Env "
            "instances); use vec_env='dummy', or a VecEnvWrapper"
        )
    venv = EnvPoolVecEnv(env_id, n_envs, seed, env_kwargs)
    filename = None
    if monitor_dir is not None:
        os.makedirs(monitor_dir, exist_ok=True)
        filename = os.path.join(monitor_dir, "envpool")
    return EnvPoolMonitor(venv, filename=filename, **dict(monitor_kwargs or {}))
