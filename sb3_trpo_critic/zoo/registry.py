"""Register TRPOCritic and RecurrentTRPOCritic in rl-zoo3: its algorithm table and its hyperparameter search."""

from __future__ import annotations

from typing import Any

import optuna
from rl_zoo3 import hyperparams_opt
from rl_zoo3.utils import ALGOS

from sb3_trpo_critic.recurrent import RecurrentTRPOCritic
from sb3_trpo_critic.trpo_critic import TRPOCritic

#: The name of TRPOCritic in rl-zoo3 (``--algo trpo_critic``, ``logs/trpo_critic/...``).
ALGO_NAME = "trpo_critic"
#: The name of RecurrentTRPOCritic in rl-zoo3 (``--algo recurrent_trpo_critic``).
RECURRENT_ALGO_NAME = "recurrent_trpo_critic"
#: This package's algorithms, by their rl-zoo3 name; each has its hyperparameter file ``hyperparams/{name}.yml``.
ALGORITHMS: dict[str, type[TRPOCritic]] = {ALGO_NAME: TRPOCritic, RECURRENT_ALGO_NAME: RecurrentTRPOCritic}


def sample_trpo_critic_params(
    trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict[str, Any]
) -> dict[str, Any]:
    """
    Sample TRPOCritic hyperparameters for rl-zoo3's search (``train -optimize``).

    The search space follows rl-zoo3's TRPO sampler, plus ``cg_damping`` and
    ``line_search_shrinking_factor``. ``target_kl`` bounds the full KL, summed over action
    dimensions: its range, log-uniform over ``[0.001 d, 0.1 d]`` with ``d`` the dimension of a
    Box action space (1 otherwise), is rl-zoo3's TRPO range converted to these semantics.

    :param trial: The Optuna trial
    :param n_actions: Dimension of a Box action space, 0 for other action spaces (rl-zoo3's convention)
    :param n_envs: Number of parallel environments (unused)
    :param additional_args: rl-zoo3's extra arguments (unused)
    :return: Keyword arguments of :class:`~sb3_trpo_critic.TRPOCritic`, as the converter makes them
    """
    action_dim = max(int(n_actions), 1)
    n_steps_pow = trial.suggest_int("n_steps_pow", 5, 12)  # 32 .. 4096 steps per env and rollout
    batch_size_pow = trial.suggest_int("batch_size_pow", 5, 10)  # critic minibatch, 32 .. 1024
    one_minus_gamma = trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True)
    one_minus_gae_lambda = trial.suggest_float("one_minus_gae_lambda", 0.0001, 0.1, log=True)
    learning_rate = trial.suggest_float("learning_rate", 1e-5, 0.002, log=True)  # the critic's
    n_critic_updates = trial.suggest_int("n_critic_updates", 5, 30)
    cg_max_steps = trial.suggest_int("cg_max_steps", 5, 30)
    cg_damping = trial.suggest_float("cg_damping", 0.001, 0.5, log=True)
    line_search_shrinking_factor = trial.suggest_categorical("line_search_shrinking_factor", [0.5, 0.6, 0.7, 0.8, 0.9])
    target_kl = trial.suggest_float("target_kl", 0.001 * action_dim, 0.1 * action_dim, log=True)
    net_arch = trial.suggest_categorical("net_arch", ["small", "medium"])
    activation_fn = trial.suggest_categorical("activation_fn", ["tanh", "relu"])

    # Display true values
    trial.set_user_attr("gamma", 1 - one_minus_gamma)
    trial.set_user_attr("gae_lambda", 1 - one_minus_gae_lambda)
    trial.set_user_attr("n_steps", 2**n_steps_pow)
    trial.set_user_attr("batch_size", 2**batch_size_pow)
    return convert_trpo_critic_params(
        {
            "n_steps_pow": n_steps_pow,
            "batch_size_pow": batch_size_pow,
            "one_minus_gamma": one_minus_gamma,
            "one_minus_gae_lambda": one_minus_gae_lambda,
            "learning_rate": learning_rate,
            "n_critic_updates": n_critic_updates,
            "cg_max_steps": cg_max_steps,
            "cg_damping": cg_damping,
            "line_search_shrinking_factor": line_search_shrinking_factor,
            "target_kl": target_kl,
            "net_arch": net_arch,
            "activation_fn": activation_fn,
        }
    )


def convert_trpo_critic_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Convert the parameters of a trial (as stored in the Optuna study) to TRPOCritic's arguments.

    rl-zoo3 uses it for ``train --trial-id``, which reloads a trial's hyperparameters from the
    study. Powers of two, ``one_minus_*``, ``net_arch`` and ``activation_fn`` are converted as by
    rl-zoo3's on-policy converter; the other parameters are already TRPOCritic's arguments.

    :param sampled_params: ``trial.params``
    :return: Keyword arguments of :class:`~sb3_trpo_critic.TRPOCritic`
    """
    return hyperparams_opt.convert_onpolicy_params(sampled_params)


def register() -> None:
    """
    Add TRPOCritic to rl-zoo3 as ``trpo_critic`` and RecurrentTRPOCritic as ``recurrent_trpo_critic``,
    next to the built-in algorithms (both with the same hyperparameter search).

    It updates, in place, the dictionaries rl-zoo3's scripts read: ``rl_zoo3.utils.ALGOS`` (the
    same object as ``rl_zoo3.ALGOS``, used by train, enjoy and record_video), and
    ``HYPERPARAMS_SAMPLER`` / ``HYPERPARAMS_CONVERTER`` of ``rl_zoo3.hyperparams_opt``. The
    built-in algorithms stay. Calling it again does nothing more.

    rl-zoo3 builds the ``--algo`` choices when a script starts, so call this before.
    """
    for name, algorithm in ALGORITHMS.items():
        ALGOS[name] = algorithm
        hyperparams_opt.HYPERPARAMS_SAMPLER[name] = sample_trpo_critic_params
        hyperparams_opt.HYPERPARAMS_CONVERTER[name] = convert_trpo_critic_params
