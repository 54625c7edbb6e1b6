"""Measurement (issue 13): RecurrentTRPOCritic's train() with the episode-start resets folded into the initial states.

sb3_contrib's ``_process_sequence`` unrolls the LSTM step by step in Python whenever a sequence starts an episode;
``reset_at_sequence_starts`` applies those resets to the sequences' stored initial states instead, so one LSTM
call runs each padded batch (same outputs: ``tests/test_recurrent.py -k fold``). This times train() on the same
rollout (PendulumNoVel-v1 with the shipped zoo entry's settings) with the fold and without it (the step-by-step
loop, as before), interleaved, one torch thread, and prints the medians and their ratio.

    python benchmarks/experiments/recurrent_fold.py [--repetitions 4]
"""

import copy
import statistics
import time

import rl_zoo3.import_envs  # noqa: F401 (registers the NoVel environments)
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize
from timing_cli import parse_timing_args  # the script beside this one (its directory is on sys.path when run)

import sb3_trpo_critic.recurrent as recurrent
from sb3_trpo_critic import RecurrentTRPOCritic


def main() -> None:
    repetitions = parse_timing_args(__doc__, default_repetitions=4)
    env = VecNormalize(make_vec_env("PendulumNoVel-v1", n_envs=2, seed=0), gamma=0.9)
    model = RecurrentTRPOCritic(
        "MlpLstmPolicy", env, n_steps=1024, gae_lambda=0.95, gamma=0.9, learning_rate=1e-3, n_critic_updates=15,
        use_sde=True, sde_sample_freq=4, target_kl=0.03, seed=0,
        policy_kwargs=dict(ortho_init=False, activation_fn=th.nn.ReLU, lstm_hidden_size=64, enable_critic_lstm=True,
                           net_arch=dict(pi=[64], vf=[64])),
    )  # fmt: skip
    model.learn(2048)  # one update, then a fresh rollout in the buffer
    state = copy.deepcopy(model.policy.state_dict())
    fold = recurrent.reset_at_sequence_starts
    variants = {"fold": fold, "step-by-step loop": lambda states, starts: (states, starts)}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repetitions):
        for name, function in variants.items():
            recurrent.reset_at_sequence_starts = function
            model.policy.load_state_dict(state)
            start = time.perf_counter()
            model.train()
            seconds[name].append(time.perf_counter() - start)
    recurrent.reset_at_sequence_starts = fold
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        print(f"{name}: train() median {median:.2f} s over {repetitions}")
    print(f"fold / loop: {medians['fold'] / medians['step-by-step loop']:.3f}")


if __name__ == "__main__":
    main()
