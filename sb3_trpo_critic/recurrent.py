"""RecurrentTRPOCritic: TRPOCritic's trust-region update for LSTM policies."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, ClassVar, TypeVar

import torch as th
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.buffers import RecurrentDictRolloutBuffer, RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import MaybeCallback, PyTorchObs
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from sb3_trpo_critic.policies import CnnLstmPolicy, MlpLstmPolicy, MultiInputLstmPolicy
from sb3_trpo_critic.trpo_critic import HyperparameterError, Rollout, TRPOCritic, distribution_validation_off

SelfRecurrentTRPOCritic = TypeVar("SelfRecurrentTRPOCritic", bound="RecurrentTRPOCritic")

SHARED_LSTM_REFUSED = (
    "policy_kwargs shared_lstm must be False: the critic would read the actor's LSTM, which the trust region "
    "bounds; give the critic its own LSTM (enable_critic_lstm=True, the default) or none (enable_critic_lstm=False)"
)


def reset_at_sequence_starts(
    lstm_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor
) -> tuple[tuple[th.Tensor, th.Tensor], th.Tensor]:
    """
    Apply the episode-start resets of padded sequences to their initial LSTM states.

    sb3_contrib's ``_process_sequence`` unrolls the LSTM one step at a time in Python as soon as any
    ``episode_starts`` is set, to reset the state there: :math:`(h, c) \\leftarrow (1 - s_t)\\,(h, c)`.
    The recurrent rollout buffer cuts its sequences at episode starts, so a start is only ever the first
    step of a sequence; there the reset is the same applied to the stored initial state, and with no start
    left, ``_process_sequence`` runs the whole padded batch in one LSTM call (same outputs, one call
    instead of one per step). Sequences that start an episode in the middle (not made by sb3_contrib's
    buffers) are returned unchanged, for the step-by-step loop.

    :param lstm_states: initial (hidden, cell) states, each ``(num_layers, n_seq, hidden_size)``
    :param episode_starts: ``(n_seq * max_length,)`` flags, sequence after sequence
    :return: the states with the resets applied and all-zero ``episode_starts``, or both unchanged
    """
    n_seq = lstm_states[0].shape[1]
    starts = episode_starts.reshape(n_seq, -1)
    if bool(th.any(starts[:, 1:] != 0.0)):
        return lstm_states, episode_starts
    keep = (1.0 - starts[:, 0]).view(1, n_seq, 1)
    return (keep * lstm_states[0], keep * lstm_states[1]), th.zeros_like(episode_starts)


class RecurrentTRPOCritic(TRPOCritic):
    """
    TRPOCritic for recurrent (LSTM) policies: the same trust-region update, over the rollout's sequences.

    The policies, the rollout buffer and the rollout loop are sb3_contrib's, as used by its
    ``RecurrentPPO``: ``MlpLstmPolicy`` / ``CnnLstmPolicy`` / ``MultiInputLstmPolicy`` (the actor has its
    LSTM; the critic has one of its own, or none with ``enable_critic_lstm=False``), the
    ``RecurrentRolloutBuffer`` (padded sequences, the LSTM states at each sequence's start, and a mask of
    the padding), and ``predict(obs, state=..., episode_start=...)``.

    The update is :class:`~sb3_trpo_critic.TRPOCritic`'s, with every mean over states taken over the
    sequences' real steps (the mask) and the policy unrolled from the stored LSTM states:

    * surrogate :math:`L(\\theta) = \\frac{1}{N} \\sum_{s} m_s r_s(\\theta) \\hat A_s`,
      :math:`r_s(\\theta) = \\pi_\\theta(a_s | o_{\\leq s}) / \\pi_{old}(a_s | o_{\\leq s})`,
      :math:`N = \\sum_s m_s` (:math:`m_s = 0` on padding);
    * Fisher :math:`F = \\frac{1}{N} \\sum_s m_s J_s^\\top M_s J_s`,
      :math:`J_s = \\partial \\eta(o_{\\leq s}) / \\partial \\theta` through the unrolled LSTM: exactly the
      Hessian at :math:`\\theta_{old}` of the line search's mean KL,
      :math:`\\frac{1}{N} \\sum_s m_s KL(\\pi_{old}(\\cdot | o_{\\leq s}) \\| \\pi_\\theta(\\cdot | o_{\\leq s}))`;
    * ``sub_sampling_factor`` k: the Fisher-vector products use every k-th *sequence* (an LSTM's state
      at step s needs the steps before it, so single states cannot be dropped);
    * the critic regresses :math:`V(o_{\\leq s})` on the returns, over minibatches of sequences, with its
      own optimizer; the actor's parameters (its LSTM included) are frozen meanwhile.

    ``shared_lstm=True`` is refused: the critic would read the actor's LSTM, which the trust region
    bounds. Every other argument is :class:`~sb3_trpo_critic.TRPOCritic`'s, with the same name, default,
    allowed range and meaning.

    :param policy: The recurrent policy (MlpLstmPolicy, CnnLstmPolicy, MultiInputLstmPolicy, or a subclass
        of sb3_contrib's ``RecurrentActorCriticPolicy``)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The critic's learning rate, it can be a function of the current progress remaining
    :param n_steps: The number of steps to run for each environment per update
    :param batch_size: Minibatch size of the critic's regression, in steps (sequences are cut at its edges,
        each piece starting from its stored LSTM state)
    :param gamma: Discount factor, in [0, 1]
    :param cg_max_steps: Maximum number of conjugate gradient steps (Fisher-vector products)
    :param cg_damping: Damping :math:`\\lambda \\geq 0` added to the Fisher matrix; ``None`` (the default): 0.1 per
        action dimension, as in TRPOCritic
    :param line_search_shrinking_factor: Step-size reduction factor :math:`\\alpha \\in (0, 1)` of the line search
    :param line_search_max_iter: Maximum number of candidates the line search evaluates
    :param n_critic_updates: Number of epochs of critic regression per policy update
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage Estimator, in [0, 1]
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE (-1: once per rollout)
    :param rollout_buffer_class: Rollout buffer class to use. If ``None``: sb3_contrib's
        ``RecurrentRolloutBuffer`` (``RecurrentDictRolloutBuffer`` for Dict observations)
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param normalize_advantage: Whether to normalize the advantages (over the real steps)
    :param target_kl: Trust region radius :math:`\\delta > 0` on the mean full KL (summed over action dimensions),
        or a schedule of the progress remaining; ``None`` (the default): 0.01 per action dimension, as in TRPOCritic
    :param sub_sampling_factor: Use every ``sub_sampling_factor``-th sequence for the Fisher-vector products
    :param cg_residual_tol: Conjugate gradient stops when the squared norm of its residual falls below this
    :param line_search_accept_ratio: Minimal ratio of actual to linearly predicted improvement, in [0, 1)
    :param critic_optimizer_class: Optimizer of the critic (``None``: the policy's ``optimizer_class``)
    :param critic_optimizer_kwargs: Keyword arguments of the critic's optimizer (``None``: the policy's)
    :param critic_max_grad_norm: If given (> 0), clip the norm of the critic's gradient to it
    :param stats_window_size: Window size for the rollout logging (episodes)
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation (e.g. ``lstm_hidden_size``,
        ``n_lstm_layers``, ``enable_critic_lstm``); without ``log_std_init``, a Box action's initial standard
        deviation is :math:`1/\\sqrt{d}`, as in TRPOCritic
    :param verbose: the verbosity level: 0 no output, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run ("auto": the GPU if possible)
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpLstmPolicy": MlpLstmPolicy,
        "CnnLstmPolicy": CnnLstmPolicy,
        "MultiInputLstmPolicy": MultiInputLstmPolicy,
    }
    policy: RecurrentActorCriticPolicy

    def _setup_model(self) -> None:
        # sb3_contrib's RecurrentPPO._setup_model, without PPO's clip-range schedules
        if self.policy_kwargs.get("shared_lstm"):  # (checked before sb3_contrib's policy asserts on it)
            raise HyperparameterError(SHARED_LSTM_REFUSED)
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, use_sde=self.use_sde, **self.policy_kwargs
        ).to(self.device)
        if not isinstance(self.policy, RecurrentActorCriticPolicy):
            raise HyperparameterError(
                f"policy must be recurrent (MlpLstmPolicy, CnnLstmPolicy, MultiInputLstmPolicy or a subclass of "
                f"sb3_contrib's RecurrentActorCriticPolicy), got {type(self.policy).__name__}; "
                "for a policy without memory (or a model saved by TRPOCritic) use TRPOCritic"
            )
        if self.policy.shared_lstm:
            raise HyperparameterError(SHARED_LSTM_REFUSED)
        lstm = self.policy.lstm_actor
        state_shape = (lstm.num_layers, self.n_envs, lstm.hidden_size)
        self._last_lstm_states = RNNStates(
            (th.zeros(state_shape, device=self.device), th.zeros(state_shape, device=self.device)),
            (th.zeros(state_shape, device=self.device), th.zeros(state_shape, device=self.device)),
        )
        dict_obs = isinstance(self.observation_space, spaces.Dict)
        default_buffer = RecurrentDictRolloutBuffer if dict_obs else RecurrentRolloutBuffer
        buffer_class: type[Any] = self.rollout_buffer_class or default_buffer
        self.rollout_buffer = buffer_class(
            self.n_steps,
            self.observation_space,
            self.action_space,
            (self.n_steps, lstm.num_layers, self.n_envs, lstm.hidden_size),
            self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            **(self.rollout_buffer_kwargs or {}),
        )
        self._setup_critic_optimizer()

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """sb3_contrib's recurrent rollout loop (``RecurrentPPO.collect_rollouts``), unchanged, with torch's
        argument validation of distributions turned off meanwhile and the last update's rollout merged into the
        observation statistics first, as in :meth:`TRPOCritic.collect_rollouts`."""
        self._merge_observation_statistics()
        with distribution_validation_off():
            # RecurrentPPO's loop reads only what both algorithms have (policy, env, _last_lstm_states, ...)
            return RecurrentPPO.collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps)  # type: ignore[arg-type]

    def _action_distribution(self, rollout: Rollout) -> Distribution:
        """The action distribution on every step of the rollout's sequences, unrolled from their stored states."""
        return self._recurrent_distribution(rollout.observations, rollout.lstm_states.pi, rollout.episode_starts)  # type: ignore[union-attr, arg-type]

    def _fisher_distribution(self, rollout: Rollout) -> tuple[Distribution, th.Tensor | None]:
        """Every ``sub_sampling_factor``-th sequence, unrolled, and the mask of its real steps."""
        lstm_states, episode_starts, mask = rollout.lstm_states, rollout.episode_starts, rollout.mask  # type: ignore[union-attr]
        n_sequences = lstm_states.pi[0].shape[1]
        step = self.sub_sampling_factor

        def every_kth_sequence(tensor: th.Tensor) -> th.Tensor:
            # (n_seq * max_length, ...) -> (n_seq, max_length, ...) -> every k-th -> flat again
            return tensor.reshape(n_sequences, -1, *tensor.shape[1:])[::step].reshape(-1, *tensor.shape[1:])

        obs = rollout.observations
        if isinstance(obs, dict):
            obs = {key: every_kth_sequence(value) for key, value in obs.items()}
        else:
            obs = every_kth_sequence(obs)
        states = (lstm_states.pi[0][:, ::step].contiguous(), lstm_states.pi[1][:, ::step].contiguous())
        distribution = self._recurrent_distribution(obs, states, every_kth_sequence(episode_starts))
        return distribution, every_kth_sequence(mask) > 1e-8

    def _state_mask(self, rollout: Rollout) -> th.Tensor:
        """The real steps of the padded sequences."""
        return rollout.mask > 1e-8  # type: ignore[union-attr]

    def _recurrent_distribution(
        self, obs: PyTorchObs, lstm_states: tuple[th.Tensor, th.Tensor], episode_starts: th.Tensor
    ) -> Distribution:
        lstm_states, episode_starts = reset_at_sequence_starts(lstm_states, episode_starts)
        # (sb3_contrib annotates obs as a tensor; its Dict policies take a dict)
        distribution, _ = self.policy.get_distribution(obs, lstm_states, episode_starts)  # type: ignore[arg-type]
        # SB3 policies return the same, mutated distribution object on every call: keep a copy.
        return copy.copy(distribution)

    def _critic_minibatches(self, rollout: Rollout) -> Iterator[Rollout]:
        """
        One epoch of the critic's minibatches: ``batch_size`` steps in sequences, from the rollout buffer's
        ``get`` (sequences are cut at a minibatch's edges, each piece starting from its stored LSTM state).
        """
        yield from self.rollout_buffer.get(self.batch_size)  # type: ignore[misc]

    def _value_loss(self, batch: Rollout) -> th.Tensor:
        """MSE of :math:`V(o_{\\leq s})`, unrolled from the stored critic states, over the real steps."""
        lstm_states, episode_starts = reset_at_sequence_starts(batch.lstm_states.vf, batch.episode_starts)  # type: ignore[union-attr, arg-type]
        values = self.policy.predict_values(batch.observations, lstm_states, episode_starts).flatten()  # type: ignore[arg-type]
        real = self._state_mask(batch)
        return F.mse_loss(values[real], batch.returns[real])

    def learn(
        self: SelfRecurrentTRPOCritic,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "RecurrentTRPOCritic",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRecurrentTRPOCritic:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
