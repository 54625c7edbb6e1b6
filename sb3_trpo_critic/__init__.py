"""sb3-trpo-critic: Trust Region Policy Optimization with a separately regressed critic, for Stable-Baselines3."""

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

__all__ = [
    "CnnLstmPolicy",
    "CnnPolicy",
    "HyperparameterError",
    "MlpLstmPolicy",
    "MlpPolicy",
    "MultiInputLstmPolicy",
    "MultiInputPolicy",
    "RecurrentTRPOCritic",
    "TRPOCritic",
    "__version__",
    "from_sb3_contrib",
]
