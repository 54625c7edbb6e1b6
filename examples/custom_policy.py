"""Custom networks for TRPOCritic: network sizes, activation, and a feature extractor of your own.

python examples/custom_policy.py --env Pendulum-v1 --timesteps 50000

TRPOCritic uses SB3's actor-critic policies, so everything ``policy_kwargs`` does for PPO works
here. One rule: the actor and the critic must not share a trainable parameter (the trust region
bounds the actor; the critic is fit by SGD). TRPOCritic's policies therefore default to
``share_features_extractor=False``: a feature extractor is built twice, once for each.
"""

import argparse

import gymnasium as gym
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.policies import split_actor_critic_parameters


class LayerNormExtractor(BaseFeaturesExtractor):
    """A feature extractor with trainable parameters: Linear -> LayerNorm -> Tanh."""

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 64):
        super().__init__(observation_space, features_dim)
        self.net = th.nn.Sequential(
            th.nn.Linear(int(observation_space.shape[0]), features_dim),
            th.nn.LayerNorm(features_dim),
            th.nn.Tanh(),
        )

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.net(observations)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=5)
    args = parser.parse_args(argv)

    env = make_vec_env(args.env, n_envs=2, seed=args.seed)
    policy_kwargs = dict(
        features_extractor_class=LayerNormExtractor,
        features_extractor_kwargs=dict(features_dim=64),
        net_arch=dict(pi=[64], vf=[128, 128]),  # a small actor, a bigger critic
        activation_fn=th.nn.Tanh,
        log_std_init=-0.5,
    )

    # A shared feature extractor belongs to the actor: the trust region bounds it, the critic never trains it.
    shared = TRPOCritic("MlpPolicy", env, policy_kwargs={**policy_kwargs, "share_features_extractor": True})
    extractor = {id(p) for p in shared.policy.features_extractor.parameters()}
    assert extractor <= {id(p) for p in shared._actor_params}
    print(f"shared extractor: its {len(extractor)} parameter tensors belong to the actor")

    model = TRPOCritic("MlpPolicy", env, n_steps=1024, gamma=0.9, policy_kwargs=policy_kwargs, seed=args.seed)
    # The split TRPOCritic uses: which parameters the action distribution and the value depend on.
    actor_params, critic_params = split_actor_critic_parameters(model.policy)
    n_actor, n_critic = sum(p.numel() for p in actor_params), sum(p.numel() for p in critic_params)
    print(f"actor parameters: {n_actor}, critic parameters: {n_critic}")

    model.learn(total_timesteps=args.timesteps)
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
    mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    assert isinstance(mean_return, float)  # (a list only with return_episode_rewards=True)
    print(f"{args.env}: mean return {mean_return:.1f} +- {std_return:.1f} over {args.eval_episodes} episodes")
    return mean_return


if __name__ == "__main__":
    main()
