"""Move from sb3_contrib.TRPO to TRPOCritic: translate the hyperparameters, carry the weights over.

python examples/from_sb3_contrib.py --env HalfCheetah-v5 --timesteps 20000

Needs sb3-contrib (``pip install -e ".[zoo]"``) and, for the default environment, MuJoCo
(``pip install -e ".[mujoco]"``). The script trains ``sb3_contrib.TRPO`` with rl-zoo3's
HalfCheetah hyperparameters, saves it, then builds a TRPOCritic with the same trust region,
loads the saved policy's weights into it and continues training.
"""

import argparse
import tempfile
from pathlib import Path
from typing import Any

from sb3_contrib import TRPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import TRPOCritic, from_sb3_contrib

#: rl-zoo3's trpo.yml entry for HalfCheetah (with normalize: true and n_envs: 2)
ZOO_HALFCHEETAH: dict[str, Any] = dict(
    batch_size=128,
    n_steps=1024,
    gamma=0.99,
    gae_lambda=0.95,
    sub_sampling_factor=1,
    cg_max_steps=25,
    cg_damping=0.1,
    n_critic_updates=20,
    learning_rate=1e-3,
    target_kl=0.04,
)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--timesteps", type=int, default=20_000, help="steps of each of the two trainings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--same-step", action="store_true", help="scale cg_damping too (see from_sb3_contrib)")
    args = parser.parse_args(argv)

    env = VecNormalize(make_vec_env(args.env, n_envs=2, seed=args.seed))
    contrib = TRPO("MlpPolicy", env, seed=args.seed, **ZOO_HALFCHEETAH)
    contrib.learn(total_timesteps=args.timesteps)

    hyperparameters = from_sb3_contrib(ZOO_HALFCHEETAH, env.action_space, same_step=args.same_step)
    print(f"sb3_contrib.TRPO: target_kl={ZOO_HALFCHEETAH['target_kl']}, cg_damping={ZOO_HALFCHEETAH['cg_damping']}")
    print(f"TRPOCritic:       target_kl={hyperparameters['target_kl']:g}, cg_damping={hyperparameters['cg_damping']:g}")

    with tempfile.TemporaryDirectory() as folder:
        contrib.save(Path(folder) / "contrib_trpo")
        # TRPOCritic.load() refuses an sb3_contrib.TRPO file (its optimizer covers all parameters,
        # TRPOCritic's only the critic's), but the policy's weights are compatible: same networks.
        _, params, _ = load_from_zip_file(Path(folder) / "contrib_trpo")
    assert params is not None
    model = TRPOCritic("MlpPolicy", env, seed=args.seed, **hyperparameters)
    model.set_parameters({"policy": params["policy"]}, exact_match=False)  # the policy's weights, not its optimizer

    # The same VecNormalize wrapper (and its statistics) goes on; a fresh Adam state for the critic.
    model.learn(total_timesteps=args.timesteps)

    env.training, env.norm_reward = False, False
    mean_return, std_return = evaluate_policy(model, env, n_eval_episodes=args.eval_episodes, deterministic=True)
    assert isinstance(mean_return, float)  # (a list only with return_episode_rewards=True)
    print(f"{args.env}: mean return {mean_return:.1f} +- {std_return:.1f} over {args.eval_episodes} episodes")
    return mean_return


if __name__ == "__main__":
    main()
