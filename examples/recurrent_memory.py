"""RecurrentTRPOCritic on CartPole without velocities: an LSTM policy against a memoryless one.

The observation keeps the cart's position and the pole's angle and drops both velocities (as rl-zoo3's
CartPoleNoVel-v1): a policy must remember the last observations to know where the pole is going.

python examples/recurrent_memory.py --timesteps 100000
"""

import argparse

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import RecurrentTRPOCritic, TRPOCritic


class NoVelocity(gym.ObservationWrapper):
    """CartPole-v1 with the cart's velocity and the pole's angular velocity set to 0."""

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation * np.array([1.0, 0.0, 1.0, 0.0], dtype=observation.dtype)


def make_env() -> gym.Env:
    return NoVelocity(gym.make("CartPole-v1"))


def evaluate(model: RecurrentTRPOCritic | TRPOCritic, env: VecNormalize, episodes: int) -> float:
    """Deterministic episodes, threading the LSTM state through predict() as with RecurrentPPO."""
    env.training, env.norm_reward = False, False
    returns: list[float] = []
    current = np.zeros(env.num_envs)
    observation = env.reset()
    state, episode_start = None, np.ones(env.num_envs, dtype=bool)
    while len(returns) < episodes:
        action, state = model.predict(observation, state=state, episode_start=episode_start, deterministic=True)
        next_observation, _, done, _ = env.step(action)
        assert isinstance(next_observation, np.ndarray)  # CartPole's observations: one array for all envs
        observation = next_observation
        current += env.get_original_reward()
        returns.extend(current[done])
        current[done] = 0.0
        episode_start = done
    return float(np.mean(returns[:episodes]))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args(argv)

    # recurrent_trpo_critic.yml's CartPoleNoVel-v1 entry, and the same without the LSTM
    settings = dict(n_steps=128, batch_size=256, gamma=0.98, gae_lambda=0.8, n_critic_updates=10, seed=args.seed)
    lstm = dict(ortho_init=False, lstm_hidden_size=64, enable_critic_lstm=True, net_arch=dict(pi=[64], vf=[64]))
    results = {}
    for name, algorithm, policy, policy_kwargs in (
        ("RecurrentTRPOCritic", RecurrentTRPOCritic, "MlpLstmPolicy", lstm),
        ("TRPOCritic (no memory)", TRPOCritic, "MlpPolicy", dict(ortho_init=False, net_arch=dict(pi=[64, 64], vf=[64, 64]))),
    ):
        env = VecNormalize(make_vec_env(make_env, n_envs=8, seed=args.seed))
        model = algorithm(policy, env, policy_kwargs=policy_kwargs, **settings)
        model.learn(total_timesteps=args.timesteps)
        eval_env = VecNormalize(make_vec_env(make_env, n_envs=1, seed=args.seed + 1000))
        eval_env.obs_rms = env.obs_rms
        results[name] = evaluate(model, eval_env, args.eval_episodes)
        print(f"CartPole without velocities, {name}: mean return {results[name]:.1f} over {args.eval_episodes} episodes")
    return results


if __name__ == "__main__":
    main()
