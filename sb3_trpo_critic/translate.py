"""Hyperparameters of ``sb3_contrib.TRPO`` translated to :class:`~sb3_trpo_critic.TRPOCritic`'s.

The one rule, used by the documentation, the example, the benchmarks and the tests:
``sb3_contrib.TRPO`` bounds the KL *averaged* over the ``d`` dimensions of a Box or MultiBinary
action, TRPOCritic the KL of the whole action distribution (their sum). So
``TRPO(target_kl=k)`` allows the same trust region as ``TRPOCritic(target_kl=d * k)``; with
``cg_damping`` times ``d`` as well, both solve the same linear system and take the same step
(TRPOCritic's Fisher is ``d`` times the one sb3_contrib differentiates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

#: sb3_contrib.TRPO's defaults of the hyperparameters that translate (TRPOCritic's default target_kl=None is the same
#: trust region, 0.01 per action dimension; its cg_damping default is the same number).
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

    Every other hyperparameter keeps its name and value.

    :param hyperparameters: keyword arguments of ``sb3_contrib.TRPO`` (an rl-zoo3 ``trpo.yml``
        entry's model arguments); missing ``target_kl``/``cg_damping`` take sb3_contrib's defaults
    :param action_space: the environment's action space
    :param same_step: ``False``: the same trust region (``target_kl`` times ``d``).
        ``True``: also ``cg_damping`` times ``d``, so that the step is exactly sb3_contrib's.
    :return: the translated keyword arguments (a new dict)
    """
    d = kl_dimensions(action_space)
    translated = dict(hyperparameters)
    translated["target_kl"] = d * hyperparameters.get("target_kl", SB3_CONTRIB_DEFAULTS["target_kl"])
    if same_step:
        translated["cg_damping"] = d * hyperparameters.get("cg_damping", SB3_CONTRIB_DEFAULTS["cg_damping"])
    return translated
