"""
rl-zoo3 integration: train, evaluate and tune :class:`~sb3_trpo_critic.TRPOCritic` from hyperparameter files.

- :func:`register` adds ``trpo_critic`` and ``recurrent_trpo_critic`` to rl-zoo3's algorithm table and
  hyperparameter search;
- :func:`~sb3_trpo_critic.zoo.cli.main` (the ``sb3-trpo-critic`` command and
  ``python -m sb3_trpo_critic.zoo``) runs rl-zoo3's scripts with it registered;
- :func:`load_zoo_hyperparameters` returns the preprocessed hyperparameters of one
  algorithm on one environment, as rl-zoo3's ``train`` would use them.

Needs the ``zoo`` extra: ``pip install "sb3-trpo-critic[zoo]"``.
"""

from sb3_trpo_critic.zoo.envs import make_zoo_vec_env
from sb3_trpo_critic.zoo.hyperparameters import (
    ENTRY_RULES,
    HYPERPARAMS_FILE,
    EntryChoice,
    ZooError,
    ZooHyperparameters,
    hyperparameter_file,
    load_zoo_hyperparameters,
    read_hyperparameter_file,
    select_entry,
)
from sb3_trpo_critic.zoo.registry import (
    ALGO_NAME,
    ALGORITHMS,
    RECURRENT_ALGO_NAME,
    convert_trpo_critic_params,
    register,
    sample_trpo_critic_params,
)

__all__ = [
    "ALGORITHMS",
    "ALGO_NAME",
    "ENTRY_RULES",
    "HYPERPARAMS_FILE",
    "RECURRENT_ALGO_NAME",
    "EntryChoice",
    "ZooError",
    "ZooHyperparameters",
    "convert_trpo_critic_params",
    "hyperparameter_file",
    "load_zoo_hyperparameters",
    "make_zoo_vec_env",
    "read_hyperparameter_file",
    "register",
    "sample_trpo_critic_params",
    "select_entry",
]
