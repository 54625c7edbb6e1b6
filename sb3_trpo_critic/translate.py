"""Hyperparameters of ``sb3_contrib.TRPO`` translated to :class:`~sb3_trpo_critic.TRPOCritic`'s.

The one rule, used by the documentation, the example, the benchmarks and the tests:
``sb3_contrib.TRPO`` bounds the KL *averaged* over the ``d`` dimensions of a Box or MultiBinary
action, TRPOCritic the KL of the whole action distribution (their sum). So
``TRPO(target_kl=k)`` allows the same trust region as ``TRPOCritic(target_kl=d * k)``; with
``cg_damping`` times ``d`` as well, both solve the same linear system and take the same step
(TRPOCritic's Fisher is ``d`` times the one sb3_contrib differentiates). TRPOCritic's defaults
``target_kl=None`` and ``cg_damping=None`` are sb3_contrib's defaults translated so: 0.01 and 0.1 per dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

#: sb3_contrib.TRPO's defaults of the hyperparameters that translate (TRPOCritic's defaults target_kl=None and
#: cg_damping=None are these per action dimension: the same trust region and the same step).
SB3_CONTRIB_DEFAULTS: dict[str, float] = {"target_kl": 0.01, "cg_damping": 0.1}


def kl_dimensions(action_space: spaces.Space) -> int:
    """
    The number of dimensions ``sb3_contrib.TRPO`` averages its KL over: ``d`` for Box and
    MultiBinary actions, 1 for Discrete and MultiDiscrete (whose KL it sums, as TRPOCritic does).

    :param action_space: the environment's action space
    :return: ``d``
    """
    if isinstance(action_space, (spaces.Box, spaces.MultiBinary)):
        return int(np.prod(action_space.shape))
    return 1


def from_sb3_contrib(
    hyperparameters: Mapping[str, Any], action_space: spaces.Space, same_step: bool = False
) -> dict[str, Any]:
    """
    TRPOCritic's keyword arguments equivalent to ``sb3_contrib.TRPO(**hyperparameters)``.

    Every other hyperparameter keeps its name and value. On a Box action without gSDE, ``policy_kwargs``
    (a dict, or none) also gets ``log_std_init=0.0`` unless it sets one: sb3_contrib's policy starts with a
    standard deviation of 1 in every dimension, TRPOCritic's by default with :math:`1/\\sqrt{d}`. A
    ``policy_kwargs`` string (as in a zoo file, before rl-zoo3 evaluates it) is left as it is.

    :param hyperparameters: keyword arguments of ``sb3_contrib.TRPO`` (an rl-zoo3 ``trpo.yml``
        entry's model arguments); missing ``target_kl``/``cg_damping`` take sb3_contrib's defaults
    :param action_space: the environment's action space
    :param same_step: ``False``: the same trust region (``target_kl`` times ``d``), ``cg_damping`` kept at its
        number (``d`` times weaker relative to TRPOCritic's full-KL Fisher).
        ``True``: also ``cg_damping`` times ``d``, so that the step is exactly sb3_contrib's.
    :return: the translated keyword arguments (a new dict)
    """
    d = kl_dimensions(action_space)
    translated = dict(hyperparameters)
    translated["target_kl"] = d * hyperparameters.get("target_kl", SB3_CONTRIB_DEFAULTS["target_kl"])
    damping = hyperparameters.get("cg_damping", SB3_CONTRIB_DEFAULTS["cg_damping"])
    translated["cg_damping"] = d * damping if same_step else damping
    policy_kwargs = hyperparameters.get("policy_kwargs")
    gaussian = isinstance(action_space, spaces.Box) and not hyperparameters.get("use_sde", False)
    if gaussian and (policy_kwargs is None or isinstance(policy_kwargs, Mapping)):
        translated["policy_kwargs"] = {"log_std_init": 0.0, **(policy_kwargs or {})}
    return translated
