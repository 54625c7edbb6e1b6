"""Observation normalization inside the policy: a feature extractor with running statistics.

:class:`NormalizedFlattenExtractor` is SB3's ``FlattenExtractor`` followed by
:math:`\\mathrm{clip}((o - \\mu) / \\sqrt{\\sigma^2 + \\epsilon}, -c, c)`, with the running mean
:math:`\\mu` and variance :math:`\\sigma^2` of the observations seen in training (as
``VecNormalize(norm_obs=True)`` computes them, with the same :math:`\\epsilon = 10^{-8}` and
:math:`c = 10`). The statistics are buffers of the policy: ``save``/``load`` keep them, and
``predict`` takes raw observations. They change only when :meth:`ObservationNormalizer.update` is
called: :class:`~sb3_trpo_critic.TRPOCritic` calls it at the end of each ``train()``, with the
rollout just used, so that the policy stays fixed within a rollout and within an update (the
importance ratios and the trust region compare distributions under the same statistics).
"""

from __future__ import annotations

import gymnasium as gym
import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor


class ObservationNormalizer(th.nn.Module):
    """
    Running mean and variance of flat observations, and the normalization they define.

    :param size: Number of observation features
    :param clip: Normalized observations are clipped to ``[-clip, clip]``
    :param epsilon: Added to the variance before the square root
    """

    def __init__(self, size: int, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.clip = clip
        self.epsilon = epsilon
        self.mean: th.Tensor
        self.var: th.Tensor
        self.count: th.Tensor
        self.register_buffer("mean", th.zeros(size))
        self.register_buffer("var", th.ones(size))
        # VecNormalize's RunningMeanStd starts with a count of 1e-4: the first batch sets the statistics.
        self.register_buffer("count", th.tensor(1e-4, dtype=th.float64))

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return th.clamp((obs - self.mean) / th.sqrt(self.var + self.epsilon), -self.clip, self.clip)

    @th.no_grad()
    def update(self, obs: th.Tensor) -> None:
        """
        Merge a batch of flat observations (batch x size) into the statistics (Chan et al.'s parallel
        algorithm, as SB3's ``RunningMeanStd.update``).
        """
        obs = obs.reshape(-1, self.mean.shape[0]).to(th.float64)
        batch_count = obs.shape[0]
        batch_mean = obs.mean(dim=0)
        batch_var = obs.var(dim=0, unbiased=False)
        mean, var, count = self.mean.to(th.float64), self.var.to(th.float64), self.count
        total = count + batch_count
        delta = batch_mean - mean
        new_mean = mean + delta * batch_count / total
        m2 = var * count + batch_var * batch_count + delta.square() * count * batch_count / total
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)


class NormalizedFlattenExtractor(FlattenExtractor):
    """
    SB3's ``FlattenExtractor``, then :class:`ObservationNormalizer` (its ``normalizer``).

    :param observation_space: A Box observation space (not an image)
    :param clip: Normalized observations are clipped to ``[-clip, clip]``
    """

    def __init__(self, observation_space: gym.Space, clip: float = 10.0) -> None:
        super().__init__(observation_space)
        self.normalizer = ObservationNormalizer(self.features_dim, clip=clip)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.normalizer(super().forward(observations))


def can_normalize(observation_space: gym.Space) -> bool:
    """Whether :class:`NormalizedFlattenExtractor` applies: a Box observation space that is not an image."""
    return isinstance(observation_space, spaces.Box) and not is_image_space(observation_space, check_channels=False)


def normalizers(module: th.nn.Module) -> list[ObservationNormalizer]:
    """The :class:`ObservationNormalizer` modules of a policy (one per feature extractor), in module order."""
    return [child for child in module.modules() if isinstance(child, ObservationNormalizer)]
