"""sb3-trpo-critic: Trust Region Policy Optimization with a separately regressed critic, for Stable-Baselines3.

``EnvPoolVecEnv`` and ``make_envpool_vec_env`` (:mod:`sb3_trpo_critic.envpool`, the ``envpool`` extra) are
imported from here on first use: ``import sb3_trpo_critic`` does not import EnvPool.
"""

from typing import Any

from sb3_trpo_critic.policies import (
    CnnLstmPolicy,
    CnnPolicy,
    MlpLstmPolicy,
    MlpPolicy,
    MultiInputLstmPolicy,
    MultiInputPolicy,
)
from sb3_trpo_critic.recurrent import RecurrentTRPOCritic
from sb3_trpo_critic.translate import from_sb3_contrib
from sb3_trpo_critic.trpo_critic import HyperparameterError, TRPOCritic

__version__ = "0.1.0"

#: The names of :mod:`sb3_trpo_critic.envpool` exported here, imported on first use.
_LAZY = ("EnvPoolVecEnv", "make_envpool_vec_env")

__all__ = [
    "CnnLstmPolicy",
    "CnnPolicy",
    "EnvPoolVecEnv",
    "HyperparameterError",
    "MlpLstmPolicy",
    "MlpPolicy",
    "MultiInputLstmPolicy",
    "MultiInputPolicy",
    "RecurrentTRPOCritic",
    "TRPOCritic",
    "__version__",
    "from_sb3_contrib",
    "make_envpool_vec_env",
]


def __getattr__(name: str) -> Any:
    """:data:`_LAZY`'s names, from :mod:`sb3_trpo_critic.envpool`, on first use."""
    if name in _LAZY:
        from sb3_trpo_critic import envpool

        return getattr(envpool, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
