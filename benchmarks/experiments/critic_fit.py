"""Experiment (issue 11): how many critic epochs does a shipped entry need (HalfCheetah-v5 by default)?

Trains TRPOCritic with the shipped entry for 60k steps (``--env``, ``--steps``), then, on each of 4 later rollouts, fits
the critic from the same state with each variant (epochs x minibatch size) and reports its MSE on that rollout
(in-sample), on a second rollout of the same policy (held-out), and the time of the fit. The held-out loss is
what the next advantages see.

    python benchmarks/experiments/critic_fit.py
    python benchmarks/experiments/critic_fit.py --env Hopper-v5
"""

import argparse
import copy
import statistics
import time

import torch as th

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.update_cost import collect
from sb3_trpo_critic.zoo import load_zoo_hyperparameters, make_zoo_vec_env

VARIANTS = {
    "20 x 128 (shipped)": (20, 128),
    "10 x 128": (10, 128),
    "5 x 128": (5, 128),
    "5 x 256": (5, 256),
    "2 x 128": (2, 128),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=60_000, help="training before the fits")
    args = parser.parse_args()
    th.set_num_threads(1)
    zoo = load_zoo_hyperparameters("trpo_critic", args.env)
    model = TRPOCritic(zoo.policy, make_zoo_vec_env(zoo, 0), seed=0, **zoo.model_kwargs)
    model.learn(args.steps)
    shipped = (model.n_critic_updates, model.batch_size)
    rows: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in VARIANTS}
    for _ in range(4):
        collect(model)
        fit_on = copy.deepcopy(next(model.rollout_buffer.get(None)))
        state = copy.deepcopy(model.policy.state_dict())
        optimizer_state = copy.deepcopy(model.policy.optimizer.state_dict())
        collect(model)  # the same policy: a held-out rollout
        held_out = next(model.rollout_buffer.get(None))
        with th.no_grad():
            held_out_before = float(model._value_loss(held_out))
        for name, (epochs, batch_size) in VARIANTS.items():
            model.policy.load_state_dict(state)
            model.policy.optimizer.load_state_dict(optimizer_state)
            model.n_critic_updates, model.batch_size = epochs, batch_size
            start = time.perf_counter()
            fit = model._fit_critic(fit_on)
            seconds = time.perf_counter() - start
            with th.no_grad():
                rows[name].append((fit.loss_after, held_out_before, float(model._value_loss(held_out)), seconds))
        model.policy.load_state_dict(state)
        model.policy.optimizer.load_state_dict(optimizer_state)
        model.n_critic_updates, model.batch_size = shipped
        model.train()
    print(f"{'epochs x batch':20s} {'in-sample':>10s} {'held-out before':>16s} {'held-out after':>15s} {'fit time':>9s}")
    for name, measured in rows.items():
        in_sample, before, after = (statistics.mean(row[i] for row in measured) for i in range(3))
        seconds = statistics.median(row[3] for row in measured)
        print(f"{name:20s} {in_sample:10.4f} {before:16.4f} {after:15.4f} {seconds * 1e3:7.0f} ms")


if __name__ == "__main__":
    main()
