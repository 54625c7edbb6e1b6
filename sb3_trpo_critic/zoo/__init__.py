"""
rl-zoo3 integration: train, evaluate and tune :class:`~sb3_trpo_critic.TRPOCritic` from hyperparameter files.

- :func:`register` adds ``trpo_critic`` and ``recurrent_trpo_critic`` to rl-zoo3's algorithm table and
  hyperparameter search;
- :func:`~sb3_trpo_critic.zoo.cli.main` (the ``sb3-trpo-critic`` command and
  ``python -m sb3_trpo_critic.zoo``) runs rl-zoo3's scripts with it registered;
- :func:`load_zoo_hyperparameters` returns the preprocessed hyperparameters of one
  algorithm on one environment, as rl-zoo3's ``train`` would use them.

Needs the ``zoo`` extra: ``pip install "sb3-trpo-critic[zoo]"``. Without it, ``import sb3_trpo_critic.zoo`` works
(the ``sb3-trpo-critic`` command says what to install) and its names raise
:class:`~sb3_trpo_critic.extras.MissingExtraError`.
"""

from typing import Any

from sb3_trpo_critic.extras import MissingExtraError, as_missing_extra

try:
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
except ImportError as _error:  # the zoo extra is missing: `import sb3_trpo_critic.zoo` works, its names say so
    _as_missing = as_missing_extra(_error, "sb3_trpo_critic.zoo", preferred="zoo")
    if _as_missing is None:
        raise
    _missing: MissingExtraError = _as_missing

    def __getattr__(name: str) -> Any:
        if name in __all__:
            raise MissingExtraError(_missing.extra, str(_missing.name), f"sb3_trpo_critic.zoo.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
