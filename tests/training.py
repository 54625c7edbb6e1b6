"""Helpers of the tests that run one ``train()`` at a time."""

from stable_baselines3.common.logger import Logger

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.logged import LOGGED_VALUES

#: the values train() logs on every update, timings and the Gaussian ``train/std`` aside (from the library's table)
TRAIN_VALUE_KEYS = frozenset(row.key for row in LOGGED_VALUES if row.every_update and not row.timing)
#: every key train() logs, ``train/std`` included
LOGGED_KEYS = frozenset(row.key for row in LOGGED_VALUES)


class RecordingLogger(Logger):
    """An SB3 logger that keeps every recorded value (no output)."""

    def __init__(self):
        super().__init__(folder=None, output_formats=[])
        self.history: dict[str, list] = {}

    def record(self, key, value, exclude=None):
        self.history.setdefault(key, []).append(value)
        super().record(key, value, exclude)


def collect_rollout(model: TRPOCritic) -> None:
    """Fill the rollout buffer exactly as ``learn()`` does before calling ``train()``; log to a RecordingLogger."""
    _, callback = model._setup_learn(model.n_steps * model.n_envs, callback=None)
    model.set_logger(RecordingLogger())
    assert model.env is not None
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
