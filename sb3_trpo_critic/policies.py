"""Policies for :class:`~sb3_trpo_critic.TRPOCritic`, and the split of their parameters.

The policies are SB3's actor-critic policies, with one difference in their defaults:
``share_features_extractor=False``, so that image and Dict observations get one feature
extractor for the actor and another for the critic. A shared extractor
(``share_features_extractor=True``, as ``sb3_contrib.TRPO`` allows) is accepted too: its
parameters belong to the actor, whose moves the trust region bounds, and the critic's regression
never changes them (it trains only the value head and layers of its own).
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticCnnPolicy,
    RecurrentActorCriticPolicy,
    RecurrentMultiInputActorCriticPolicy,
)
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.utils import obs_as_tensor

from sb3_trpo_critic.trust_region import distribution_outputs


class MlpPolicy(ActorCriticPolicy):
    """SB3's :class:`~stable_baselines3.common.policies.ActorCriticPolicy`, with
    ``share_features_extractor=False`` by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(*args, **kwargs)


class CnnPolicy(ActorCriticCnnPolicy):
    """SB3's :class:`~stable_baselines3.common.policies.ActorCriticCnnPolicy`, with one CNN for the actor
    and one for the critic by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(*args, **kwargs)


class MultiInputPolicy(MultiInputActorCriticPolicy):
    """SB3's :class:`~stable_baselines3.common.policies.MultiInputActorCriticPolicy`, with separate actor
    and critic extractors by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(*args, **kwargs)


class MlpLstmPolicy(RecurrentActorCriticPolicy):
    """sb3_contrib's :class:`~sb3_contrib.common.recurrent.policies.RecurrentActorCriticPolicy` (an LSTM for the
    actor, and one for the critic unless ``enable_critic_lstm=False``), with ``share_features_extractor=False`` by
    default. ``shared_lstm=True`` is refused by :class:`~sb3_trpo_critic.RecurrentTRPOCritic`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(*args, **kwargs)


class CnnLstmPolicy(RecurrentActorCriticCnnPolicy):
    """sb3_contrib's :class:`~sb3_contrib.common.recurrent.policies.RecurrentActorCriticCnnPolicy`, with one CNN
    for the actor and one for the critic by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(*args, **kwargs)


class MultiInputLstmPolicy(RecurrentMultiInputActorCriticPolicy):
    """sb3_contrib's :class:`~sb3_contrib.common.recurrent.policies.RecurrentMultiInputActorCriticPolicy`, with
    separate actor and critic extractors by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(*args, **kwargs)


def _distribution_and_value(policy: ActorCriticPolicy, obs: Any) -> tuple[Distribution, th.Tensor]:
    """The action distribution and the value of one observation (a recurrent policy: from zero LSTM states)."""
    if isinstance(policy, RecurrentActorCriticPolicy):
        lstm = policy.lstm_actor
        zeros = th.zeros(lstm.num_layers, 1, lstm.hidden_size, device=policy.device)
        episode_starts = th.zeros(1, device=policy.device)
        distribution, _ = policy.get_distribution(obs, (zeros, zeros), episode_starts)
        return distribution, policy.predict_values(obs, (zeros, zeros), episode_starts)
    return policy.get_distribution(obs), policy.predict_values(obs)


def split_actor_critic_parameters(policy: ActorCriticPolicy) -> tuple[list[th.nn.Parameter], list[th.nn.Parameter]]:
    """
    Split a policy's trainable parameters into the actor's and the critic's, by the structure
    of its computation graph: a parameter belongs to the actor when the action distribution
    depends on it (whether the value depends on it too or not: shared layers belong to the actor,
    whose moves the trust region bounds), and to the critic when only the value depends on it.
    This holds for custom policies and feature extractors too, whatever their parameter names,
    and for recurrent policies (an LSTM is the actor's or the critic's by the same rule).

    :param policy: an actor-critic policy
    :return: ``(actor_params, critic_params)``, each in ``policy.parameters()`` order
    :raises ValueError: when a parameter is used by neither, or when the value has no parameter of its own
    """
    params = [p for p in policy.parameters() if p.requires_grad]
    observation_space = policy.observation_space
    sample = observation_space.sample()
    if isinstance(observation_space, spaces.Dict):
        sample = {key: value[None] for key, value in sample.items()}  # type: ignore[index]
    else:
        sample = sample[None]  # type: ignore[index]
    obs = obs_as_tensor(sample, policy.device)  # type: ignore[arg-type]
    was_training = policy.training
    policy.set_training_mode(False)
    try:
        with th.enable_grad():
            distribution, value = _distribution_and_value(policy, obs)
            dist_out = th.stack([out.sum() for out in distribution_outputs(distribution)]).sum()
            value_out = value.sum()
            actor_grads = th.autograd.grad(dist_out, params, allow_unused=True)
            critic_grads = th.autograd.grad(value_out, params, allow_unused=True)
    finally:
        policy.set_training_mode(was_training)

    names = {p: name for name, p in policy.named_parameters()}
    actor_params: list[th.nn.Parameter] = []
    critic_params: list[th.nn.Parameter] = []
    unused: list[str] = []
    for param, actor_grad, critic_grad in zip(params, actor_grads, critic_grads, strict=True):
        if actor_grad is not None:
            actor_params.append(param)
        elif critic_grad is not None:
            critic_params.append(param)
        else:
            unused.append(names[param])
    if unused:
        raise ValueError(
            f"Parameters {unused} influence neither the action distribution nor the value: "
            "TRPOCritic cannot tell whether they belong to the actor or the critic."
        )
    if not actor_params:
        raise ValueError("The policy's action distribution depends on no trainable parameter.")
    if not critic_params:
        raise ValueError(
            "The policy's value function depends on no trainable parameter of its own (every parameter it uses "
            "belongs to the actor, which the critic's regression does not train)."
        )
    return actor_params, critic_params
