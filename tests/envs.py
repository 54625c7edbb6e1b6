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
