"""Helpers of the tests that run one ``train()`` at a time."""

from stable_baselines3.common.logger import Logger

from sb3_trpo_critic import TRPOCritic

#: the values train() logs on every update, timings and the Gaussian ``train/std`` aside
TRAIN_VALUE_KEYS = frozenset(
    {
        "train/policy_objective",
        "train/kl_divergence",
        "train/target_kl",
        "train/surrogate_improvement",
        "train/expected_improvement",
        "train/is_line_search_success",
        "train/line_search_steps",
        "train/step_outcome",
        "train/n_rejected_steps",
        "train/cg_iterations",
        "train/cg_residual",
        "train/step_norm",
        "train/entropy",
        "train/value_loss_before",
        "train/value_loss",
        "train/critic_updates",
        "train/explained_variance",
        "train/n_updates",
        "train/learning_rate",
    }
)


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
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
