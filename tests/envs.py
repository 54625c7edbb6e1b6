"""Tiny, fast environments for the tests."""

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class BoxTargetEnv(gym.Env):
    """Continuous control in ``dim`` dimensions: the reward is ``-||action - observation||^2``."""

    def __init__(self, dim: int = 4, ep_length: int = 50):
        self.observation_space = spaces.Box(-1.0, 1.0, (dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (dim,), dtype=np.float32)
        self.ep_length = ep_length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._obs = self.np_random.uniform(-1, 1, self.observation_space.shape).astype(np.float32)
        return self._obs, {}

    def step(self, action):
        reward = -float(np.sum((np.clip(action, -1, 1) - self._obs) ** 2))
        self._t += 1
        self._obs = self.np_random.uniform(-1, 1, self.observation_space.shape).astype(np.float32)
        return self._obs, reward, False, self._t >= self.ep_length, {}


class CueRecallEnv(gym.Env):
    """
    A task that needs memory: the first observation shows a cue (+1 or -1), the next ``delay`` show
    nothing (0), and on the last step the action must name the cue (0 for -1, 1 for +1) for a reward
    of 1. Without memory the best expected return is 0.5; with memory it is 1.
    Observation: ``[cue or 0, 1 on the first step else 0]``.
    """

    def __init__(self, delay: int = 2):
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self.delay = delay

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._cue = int(self.np_random.integers(2))
        return np.array([2.0 * self._cue - 1.0, 1.0], dtype=np.float32), {}

    def step(self, action):
        self._t += 1
        last = self._t > self.delay
        reward = float(last and int(action) == self._cue)
        return np.zeros(2, dtype=np.float32), reward, last, False, {}
