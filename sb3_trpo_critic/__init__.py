"""sb3-trpo-critic: Trust Region Policy Optimization with a separately regressed critic, for Stable-Baselines3."""

from sb3_trpo_critic.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_trpo_critic.trpo_critic import TRPOCritic

__version__ = "0.1.0"

__all__ = ["CnnPolicy", "MlpPolicy", "MultiInputPolicy", "TRPOCritic", "__version__"]
