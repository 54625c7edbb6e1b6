"""Policies for :class:`~sb3_trpo_critic.TRPOCritic`, and the split of their parameters.

The policies are SB3's actor-critic policies, with one difference in their defaults:
``share_features_extractor=False``, so that image and Dict observations get one feature
extractor for the actor and another for the critic. TRPO bounds how far the *actor* moves;
the critic is fit by SGD, and a parameter shared by both would let the critic's regression
move the policy outside the trust region.
"""

from __future__ import annotations

from typing import Any

import torch as th
from gymnasium import spaces
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


def split_actor_critic_parameters(policy: ActorCriticPolicy) -> tuple[list[th.nn.Parameter], list[th.nn.Parameter]]:
    """
    Split a policy's trainable parameters into the actor's and the critic's, by the structure
    of its computation graph: a parameter belongs to the actor when the action distribution
    depends on it, to the critic when the value depends on it. This holds for custom policies
    and feature extractors too, whatever their parameter names.

    :param policy: an actor-critic policy
    :return: ``(actor_params, critic_params)``, each in ``policy.parameters()`` order
    :raises ValueError: when a parameter is used by both, or by neither
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
            distribution = policy.get_distribution(obs)
            dist_out = th.stack([out.sum() for out in distribution_outputs(distribution)]).sum()
            value_out = policy.predict_values(obs).sum()
            actor_grads = th.autograd.grad(dist_out, params, allow_unused=True)
            critic_grads = th.autograd.grad(value_out, params, allow_unused=True)
    finally:
        policy.set_training_mode(was_training)

    names = {p: name for name, p in policy.named_parameters()}
    actor_params, critic_params, shared, unused = [], [], [], []
    for param, actor_grad, critic_grad in zip(params, actor_grads, critic_grads, strict=True):
        in_actor, in_critic = actor_grad is not None, critic_grad is not None
        if in_actor and in_critic:
            shared.append(names[param])
        elif in_actor:
            actor_params.append(param)
        elif in_critic:
            critic_params.append(param)
        else:
            unused.append(names[param])
    if shared:
        raise ValueError(
            "TRPOCritic needs an actor and a critic that share no trainable parameter (the trust "
            f"region bounds the actor, the critic is fit by SGD), but {shared} are used by both. "
            "Use policy_kwargs=dict(share_features_extractor=False) (the default of TRPOCritic's "
            "policies), or a custom network without shared layers."
        )
    if unused:
        raise ValueError(
            f"Parameters {unused} influence neither the action distribution nor the value: "
            "TRPOCritic cannot tell whether they belong to the actor or the critic."
        )
    if not actor_params:
        raise ValueError("The policy's action distribution depends on no trainable parameter.")
    if not critic_params:
        raise ValueError("The policy's value function depends on no trainable parameter.")
    return actor_params, critic_params
