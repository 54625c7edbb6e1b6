"""Learning quality at fixed seeds, with rl-zoo3's TRPO hyperparameters for these envs (100k steps each)."""

from typing import Any

import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_trpo_critic import TRPOCritic

#: env id: (the return to reach, the hyperparameters)
CASES: dict[str, tuple[float, dict[str, Any]]] = {
    "CartPole-v1": (
        475.0,
        dict(n_steps=512, batch_size=512, cg_damping=1e-3, gae_lambda=0.98, n_critic_updates=20, normalize_observations=False),
    ),
    "Pendulum-v1": (
        -250.0,
        dict(n_steps=1024, gamma=0.9, n_critic_updates=15, use_sde=True, sde_sample_freq=4, normalize_observations=False),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("env_id", list(CASES))
def test_learns_within_100k_steps(env_id):
    threshold, hyperparameters = CASES[env_id]
    env = make_vec_env(env_id, n_envs=2, seed=0)
    model = TRPOCritic("MlpPolicy", env, seed=0, device="cpu", **hyperparameters).learn(100_000)
    eval_env = make_vec_env(env_id, n_envs=1, seed=1000)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    assert isinstance(mean_return, float)
    print(f"{env_id}: {mean_return:.1f} +- {std_return:.1f}")
    assert mean_return >= threshold
