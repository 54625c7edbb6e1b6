"""TRPOCritic: Trust Region Policy Optimization with a separately regressed value critic."""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import math
import pathlib
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RecurrentDictRolloutBufferSamples, RecurrentRolloutBufferSamples
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import (
    DictRolloutBufferSamples,
    GymEnv,
    MaybeCallback,
    PyTorchObs,
    RolloutBufferSamples,
    Schedule,
)
from stable_baselines3.common.utils import explained_variance
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize
from torch.nn import functional as F

from sb3_trpo_critic.guards import NonFiniteRolloutCheck, check_save_file
from sb3_trpo_critic.logged import LOGGED_VALUES, UpdateRecord
from sb3_trpo_critic.normalization import NormalizedFlattenExtractor, can_normalize, normalizers
from sb3_trpo_critic.policies import CnnPolicy, MlpPolicy, MultiInputPolicy, split_actor_critic_parameters
from sb3_trpo_critic.translate import kl_dimensions
from sb3_trpo_critic.trust_region import (
    CGResult,
    LineSearchResult,
    backtracking_line_search,
    conjugate_gradient,
    flat_concat,
    full_kl,
    make_fisher_vector_product,
    masked_mean,
    trust_region_step_size,
)

SelfTRPOCritic = TypeVar("SelfTRPOCritic", bound="TRPOCritic")

#: A whole rollout, as the rollout buffer's ``get(batch_size=None)`` returns it (recurrent rollouts:
#: padded sequences with their LSTM states and a mask, see :class:`~sb3_trpo_critic.RecurrentTRPOCritic`).
Rollout = RolloutBufferSamples | DictRolloutBufferSamples | RecurrentRolloutBufferSamples | RecurrentDictRolloutBufferSamples

#: The default trust region radius (``target_kl=None``) per dimension of the action distribution: 0.01
#: times :func:`~sb3_trpo_critic.translate.kl_dimensions`, the radius of ``sb3_contrib.TRPO``'s default
#: ``target_kl=0.01`` (which bounds the KL averaged over the dimensions) in full-KL units.
TARGET_KL_PER_DIMENSION = 0.01
#: The default damping (``cg_damping=None``) per dimension of the action distribution: 0.1 times
#: :func:`~sb3_trpo_critic.translate.kl_dimensions`. TRPOCritic's Fisher matrix (of the full KL) is ``d`` times
#: the one ``sb3_contrib.TRPO`` damps by its default 0.1 (of the KL averaged over ``d`` dimensions), so with the
#: default radius the default step is exactly ``sb3_contrib.TRPO``'s default step.
CG_DAMPING_PER_DIMENSION = 0.1
#: The total variance :math:`d \\sigma_0^2` of a ``d``-dimensional Box action's initial Gaussian noise, when
#: ``policy_kwargs`` does not set ``log_std_init`` (:func:`default_log_std_init`): SB3's initial standard
#: deviation of 1 on a 1-D action, shared out over the dimensions of a larger one.
INITIAL_ACTION_NOISE_VARIANCE = 1.0

#: Action spaces with an exact Fisher metric (see :mod:`sb3_trpo_critic.trust_region`).
SUPPORTED_ACTION_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)

#: Rejections caused by non-finite numbers or a broken linear system, not by the line search.
NUMERICAL_REJECTIONS = frozenset({"nonfinite_gradient", "cg_breakdown", "degenerate_step"})
#: After this many consecutive policy steps rejected for the same numerical reason, warn (RuntimeWarning).
NUMERICAL_REJECTION_WARNING_STREAK = 3


class HyperparameterError(ValueError):
    """A hyperparameter outside its allowed range (or an environment TRPOCritic cannot train on), raised at construction."""


class PolicyStepResult(NamedTuple):
    """What one policy step did (:meth:`TRPOCritic._policy_step`)."""

    #: ``accepted``, or why the step was rejected: ``nonfinite_gradient``, ``cg_breakdown``,
    #: ``degenerate_step`` or ``line_search_failed``
    outcome: str
    #: the surrogate :math:`L(\\theta_{old})`
    surrogate: float
    #: mean entropy of the policy at :math:`\\theta_{old}`
    entropy: float
    #: mean standard deviation of a Gaussian policy at :math:`\\theta_{old}` (``None`` for others)
    std: float | None
    #: the trust region radius :math:`\\delta` of this step (``target_kl``, or its schedule's value)
    target_kl: float
    #: the damping :math:`\\lambda` of this step's Fisher matrix (``cg_damping``, or its default)
    cg_damping: float
    cg_iterations: int = 0
    cg_residual: float = float("nan")
    #: :math:`g^\\top \\beta x`
    expected_improvement: float = 0.0
    line_search_steps: int = 0
    #: :math:`L(\\theta_{new}) - L(\\theta_{old})` of the accepted step (0 if rejected)
    improvement: float = 0.0
    #: mean full KL of the accepted step (0 if rejected)
    kl: float = 0.0
    #: Euclidean norm of the accepted step (0 if rejected)
    step_norm: float = 0.0


class CriticFitResult(NamedTuple):
    """What the critic's regression did (:meth:`TRPOCritic._fit_critic`)."""

    #: MSE of the critic on the whole rollout before and after the epochs
    loss_before: float
    loss_after: float
    #: the number of optimizer steps taken (0 when the returns are not finite)
    updates: int


class TRPOCritic(OnPolicyAlgorithm):
    """
    Trust Region Policy Optimization (TRPO) with a separately regressed value-function critic.

    Paper: https://arxiv.org/abs/1502.05477 (TRPO), https://arxiv.org/abs/1506.02438 (GAE)

    Each update, on the whole rollout (the steps are numbered as in ``train()`` and the docs' method page):

    1. surrogate :math:`L(\\theta) = \\hat{\\mathbb{E}}[\\frac{\\pi_\\theta(a|s)}{\\pi_{old}(a|s)} \\hat A]`
       and its gradient :math:`g` with respect to the actor's parameters;
    2. the exact, damped Fisher-vector product :math:`v \\mapsto (F + \\lambda I) v` of the policy
       distribution (:meth:`_fisher_vector_product`);
    3. :math:`x \\approx (F + \\lambda I)^{-1} g` by conjugate gradient (:meth:`_solve`);
    4. the full step :math:`\\beta x`, :math:`\\beta = \\sqrt{2\\delta / x^\\top (F + \\lambda I) x}`;
    5. a backtracking line search that accepts the first :math:`\\theta_{old} + \\alpha^j \\beta x`
       that improves :math:`L` with :math:`\\hat{\\mathbb{E}}_s[KL(\\pi_{old} \\| \\pi_\\theta)] \\leq \\delta`,
       or restores :math:`\\theta_{old}` exactly (:meth:`_line_search`);
    6. ``n_critic_updates`` epochs of minibatch regression of :math:`V(s)` on the returns, with the
       critic's own optimizer, which never touches the actor's parameters (:meth:`_fit_critic`).

    A subclass replaces a piece of the math by overriding its method: :meth:`_fisher_vector_product`,
    :meth:`_solve`, :meth:`_line_search` or :meth:`_fit_critic` (each says what an override must return).

    The KL bounded by ``target_kl`` is the KL of the whole action distribution, summed over
    action dimensions, as in the paper. ``sb3_contrib.TRPO`` bounds the KL *averaged* over the
    dimensions of Box and MultiBinary actions, so its effective trust region is ``action_dim``
    times larger: its ``target_kl=d`` on a 6-dimensional action space matches
    ``TRPOCritic(target_kl=6 * d)``. Discrete and MultiDiscrete actions mean the same in both.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy, or a class).
        TRPOCritic's policies default to ``share_features_extractor=False`` (one feature extractor
        each for the actor and the critic). With ``share_features_extractor=True`` the shared
        parameters belong to the actor: the trust region bounds them and the critic's regression
        never changes them (as in ``sb3_contrib.TRPO``).
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The critic's learning rate, it can be a function
        of the current progress remaining (from 1 to 0)
    :param n_steps: The number of steps to run for each environment per update
        (i.e. rollout buffer size is n_steps * n_envs where n_envs is number of environment copies running in parallel)
    :param batch_size: Minibatch size of the critic's regression
    :param gamma: Discount factor, in [0, 1]
    :param cg_max_steps: Maximum number of conjugate gradient steps (Fisher-vector products)
    :param cg_damping: Damping :math:`\\lambda \\geq 0` added to the Fisher matrix: the step solves
        :math:`(F + \\lambda I) x = g`. Larger values make the step closer to a plain gradient step.
        ``None`` (the default): 0.1 per action dimension, :data:`CG_DAMPING_PER_DIMENSION` times
        :func:`~sb3_trpo_critic.translate.kl_dimensions` of the action space: ``0.1 * d`` for a
        ``d``-dimensional Box or MultiBinary action, 0.1 for Discrete and MultiDiscrete. The full-KL Fisher
        matrix is ``d`` times the one ``sb3_contrib.TRPO`` damps by 0.1, so this is its damping relative to the
        curvature, and with ``target_kl=None`` the step is exactly ``sb3_contrib.TRPO``'s default step.
        It follows the model's action space (also after ``load``); ``train/cg_damping`` logs it. A number given
        here is used as it is, never rescaled.
    :param line_search_shrinking_factor: Step-size reduction factor :math:`\\alpha \\in (0, 1)` of the
        backtracking line search (i.e., ``theta_new = theta_old + alpha^j * beta * x``)
    :param line_search_max_iter: Maximum number of candidates the line search evaluates
    :param n_critic_updates: Number of epochs of critic regression per policy update
    :param gae_lambda: Factor for trade-off of bias vs variance for Generalized Advantage Estimator, in [0, 1]
    :param use_sde: Whether to use generalized State Dependent Exploration (gSDE)
        instead of action noise exploration (default: False)
    :param sde_sample_freq: Sample a new noise matrix every n steps when using gSDE
        Default: -1 (only sample at the beginning of the rollout)
    :param rollout_buffer_class: Rollout buffer class to use. If ``None``, it will be automatically selected.
    :param rollout_buffer_kwargs: Keyword arguments to pass to the rollout buffer on creation
    :param normalize_advantage: Whether to normalize the advantages (needs ``n_steps * n_envs > 1``)
    :param target_kl: Trust region radius :math:`\\delta > 0`: the bound on the mean over states of
        the KL divergence between the old and the new action distribution, summed over action
        dimensions. See above for how a value tuned for ``sb3_contrib.TRPO`` translates. It can also
        be a function of the current progress remaining (from 1 to 0), like ``learning_rate``, for a
        radius that changes during training (e.g. shrinks linearly: ``lin_0.03`` in a zoo file); a
        value below 0 counts as 0, where no step is taken. ``None`` (the default): 0.01 per action
        dimension, :data:`TARGET_KL_PER_DIMENSION` times :func:`~sb3_trpo_critic.translate.kl_dimensions`
        of the action space: ``0.01 * d`` for a ``d``-dimensional Box or MultiBinary action, 0.01
        for Discrete and MultiDiscrete; the trust region of ``sb3_contrib.TRPO``'s default. The radius
        follows the model's action space (also after ``load``); ``train/target_kl`` logs it. A number
        or a schedule given here is used as it is, never rescaled.
    :param sub_sampling_factor: Use every ``sub_sampling_factor``-th sample of the rollout for the
        Fisher-vector products only (the gradient and the line search use the whole rollout);
        see p40-42 of John Schulman's thesis http://joschu.net/docs/thesis.pdf
    :param cg_residual_tol: Conjugate gradient stops when the squared norm of its residual
        :math:`\\|g - (F + \\lambda I) x\\|^2` falls below this (the criterion of ``sb3_contrib``)
    :param line_search_accept_ratio: A candidate is accepted only if its actual improvement of the
        surrogate is at least this fraction of the improvement expected from the linear model,
        :math:`g^\\top \\Delta\\theta`. 0 (the default) accepts any improvement; must be in [0, 1).
    :param critic_optimizer_class: Optimizer of the critic. ``None``: the policy's
        ``optimizer_class`` (``policy_kwargs``; Adam by default, as in SB3)
    :param critic_optimizer_kwargs: Keyword arguments of the critic's optimizer (the learning rate
        is ``learning_rate``). ``None``: the policy's ``optimizer_kwargs`` (Adam: ``eps=1e-5``).
        Adam and AdamW use their fused implementation unless ``fused`` or ``foreach`` is given.
    :param critic_max_grad_norm: If given (> 0), clip the norm of the critic's gradient to it
    :param normalize_observations: Normalize observations inside the policy by their running mean and
        variance (:class:`~sb3_trpo_critic.normalization.NormalizedFlattenExtractor`: the policy's
        feature extractor, whose statistics are saved and loaded with the model, so that ``predict``
        takes raw observations; they are updated with each rollout after the update that used it).
        ``None`` (the default): on for Box observations that are not images, unless the environment is
        wrapped in ``VecNormalize(norm_obs=True)`` (which normalizes them already) or ``policy_kwargs``
        names a ``features_extractor_class``. ``True`` on top of ``VecNormalize(norm_obs=True)``
        normalizes twice (a warning says so, as does ``set_env`` or ``load`` onto such an environment);
        ``False`` turns it off. ``sb3_contrib.TRPO`` and PPO do not have it.
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to average
        the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation. Without a
        ``log_std_init`` here (and without gSDE), a Gaussian policy on a ``d``-dimensional Box action starts
        with the standard deviation :math:`1/\\sqrt{d}` in each dimension (:func:`default_log_std_init`:
        the initial noise has a total variance of 1, SB3's standard deviation of 1 on a 1-D action);
        ``policy_kwargs=dict(log_std_init=0.0)`` gives SB3's 1 in every dimension, as ``sb3_contrib.TRPO``
        and PPO have it. The value used is kept in ``policy_kwargs``, and so saved with the model.
    :param verbose: the verbosity level: 0 no output, 1 info, 2 debug
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }

    #: What the last update's policy step did (``None`` before the first update, and after ``load``:
    #: it is not saved). Its fields are the numbers behind the ``train/`` values (see :mod:`sb3_trpo_critic.logged`).
    last_policy_step: PolicyStepResult | None = None
    #: What the last update's critic regression did (``None`` before the first update, and after ``load``).
    last_critic_fit: CriticFitResult | None = None
    #: Whether the last update's rollout is still to be merged into the observation statistics.
    _unmerged_observations: bool = False

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 2048,
        batch_size: int = 128,
        gamma: float = 0.99,
        cg_max_steps: int = 15,
        cg_damping: float | None = None,
        line_search_shrinking_factor: float = 0.8,
        line_search_max_iter: int = 10,
        n_critic_updates: int = 10,
        gae_lambda: float = 0.95,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        normalize_advantage: bool = True,
        target_kl: float | Schedule | None = None,
        sub_sampling_factor: int = 1,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        cg_residual_tol: float = 1e-10,
        line_search_accept_ratio: float = 0.0,
        critic_optimizer_class: type[th.optim.Optimizer] | None = None,
        critic_optimizer_kwargs: dict[str, Any] | None = None,
        critic_max_grad_norm: float | None = None,
        normalize_observations: bool | None = None,
        _init_setup_model: bool = True,
    ):
        _validate_hyperparameters(
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            gamma=gamma,
            gae_lambda=gae_lambda,
            cg_max_steps=cg_max_steps,
            cg_damping=cg_damping,
            cg_residual_tol=cg_residual_tol,
            line_search_shrinking_factor=line_search_shrinking_factor,
            line_search_max_iter=line_search_max_iter,
            line_search_accept_ratio=line_search_accept_ratio,
            n_critic_updates=n_critic_updates,
            target_kl=target_kl,
            sub_sampling_factor=sub_sampling_factor,
            critic_max_grad_norm=critic_max_grad_norm,
        )
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            gamma=gamma,
            gae_lambda=gae_lambda,
            ent_coef=0.0,  # TRPO has no entropy bonus
            vf_coef=0.0,  # the critic is fit separately
            max_grad_norm=0.0,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            device=device,
            seed=seed,
            _init_setup_model=False,
        )
        if self.env is not None and not isinstance(self.action_space, SUPPORTED_ACTION_SPACES):
            raise HyperparameterError(
                f"TRPOCritic supports {', '.join(s.__name__ for s in SUPPORTED_ACTION_SPACES)} action spaces, "
                f"not {self.action_space}"
            )
        if normalize_advantage and self.env is not None and self.env.num_envs * n_steps <= 1:
            raise HyperparameterError(
                "normalize_advantage=True needs n_steps * n_envs > 1 (the advantages' standard deviation), "
                f"got n_steps={n_steps} and n_envs={self.env.num_envs}"
            )
        self.batch_size = batch_size
        self.cg_max_steps = cg_max_steps
        self.cg_damping = cg_damping
        self.cg_residual_tol = cg_residual_tol
        self.line_search_shrinking_factor = line_search_shrinking_factor
        self.line_search_max_iter = line_search_max_iter
        self.line_search_accept_ratio = line_search_accept_ratio
        self.n_critic_updates = n_critic_updates
        self.normalize_advantage = normalize_advantage
        self.target_kl = target_kl
        self.sub_sampling_factor = sub_sampling_factor
        self.critic_optimizer_class = critic_optimizer_class
        self.critic_optimizer_kwargs = critic_optimizer_kwargs
        self.critic_max_grad_norm = critic_max_grad_norm
        self.normalize_observations = normalize_observations
        if self.env is not None and self._resolve_observation_normalization(normalize_observations):
            self.policy_kwargs = {**self.policy_kwargs, "features_extractor_class": NormalizedFlattenExtractor}
        log_std_init = default_log_std_init(self.action_space) if self.env is not None and not use_sde else None
        if log_std_init is not None and "log_std_init" not in self.policy_kwargs:
            self.policy_kwargs = {**self.policy_kwargs, "log_std_init": log_std_init}
        #: how many policy steps were rejected, by reason
        self.rejected_steps: dict[str, int] = {}
        self._last_rejection = ""
        self._rejection_streak = 0

        if _init_setup_model:
            self._setup_model()

    def _resolve_observation_normalization(self, normalize_observations: bool | None) -> bool:
        """
        Whether the policy normalizes observations (see ``normalize_observations``); called at construction,
        with the environment. A loaded model keeps the saved policy's feature extractor instead.
        """
        own_extractor = "features_extractor_class" in self.policy_kwargs
        normalized_by_env = _normalizes_observations(self.env)
        if normalize_observations is None:
            return can_normalize(self.observation_space) and not own_extractor and not normalized_by_env
        if normalize_observations:
            if not can_normalize(self.observation_space):
                raise HyperparameterError(
                    "normalize_observations=True needs a Box observation space that is not an image, "
                    f"got {self.observation_space}"
                )
            if own_extractor:
                raise HyperparameterError(
                    "normalize_observations=True replaces the feature extractor; policy_kwargs names "
                    f"features_extractor_class={self.policy_kwargs['features_extractor_class']!r}: set one of them"
                )
            if normalized_by_env:
                _warn_normalized_twice("normalize_observations=True")
        return bool(normalize_observations)

    def _check_normalized_once(self) -> None:
        """Warn when the policy normalizes observations that ``VecNormalize(norm_obs=True)`` normalizes already."""
        if normalizers(self.policy) and _normalizes_observations(self.env):
            _warn_normalized_twice("the policy normalizes its observations (normalize_observations)")

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        """SB3's ``set_env``, with a warning when the policy's observation normalizer meets ``VecNormalize(norm_obs=True)``."""
        super().set_env(env, force_reset)
        self._check_normalized_once()

    def _merge_observation_statistics(self) -> None:
        """
        Merge the last update's rollout into the running statistics of the policy's observation
        normalizers (``normalize_observations``), once: before the next rollout is collected, or at the
        end of ``learn()``. The rollout and its update used the statistics before it, so ``train()``
        leaves the policy exactly where the trust-region step put it; the next rollout (and a model
        saved after ``learn()``) uses the statistics with it.
        """
        observers = normalizers(self.policy)
        if not observers or not self._unmerged_observations:
            return
        self._unmerged_observations = False
        observations = th.as_tensor(np.asarray(self.rollout_buffer.observations), device=self.device)
        for normalizer in observers:
            normalizer.update(observations.reshape(-1, normalizer.mean.shape[0]))

    def _setup_model(self) -> None:
        super()._setup_model()
        if isinstance(self.policy, RecurrentActorCriticPolicy):
            raise HyperparameterError(
                f"policy {type(self.policy).__name__} is recurrent: train it with RecurrentTRPOCritic "
                "(and load its saved models with RecurrentTRPOCritic.load)"
            )
        self._setup_critic_optimizer()

    def _setup_critic_optimizer(self) -> None:
        """Split the policy's parameters into the actor's and the critic's; give the critic its own optimizer."""
        self._actor_params, self._critic_params = split_actor_critic_parameters(self.policy)
        # The critic's own optimizer: it replaces the policy's optimizer, so that SB3's learning-rate
        # schedule, save and load apply to it unchanged.
        optimizer_class = self.critic_optimizer_class or self.policy.optimizer_class
        optimizer_kwargs = dict(
            self.policy.optimizer_kwargs if self.critic_optimizer_kwargs is None else self.critic_optimizer_kwargs
        )
        if optimizer_class in (th.optim.Adam, th.optim.AdamW) and not {"fused", "foreach"} & optimizer_kwargs.keys():
            # One fused kernel per step instead of a loop over tensors: the same update, ~25% less time per
            # critic minibatch step on a small MLP.
            optimizer_kwargs["fused"] = True
        self.policy.optimizer = optimizer_class(self._critic_params, lr=self.lr_schedule(1), **optimizer_kwargs)  # type: ignore[call-arg]

    def _maybe_recommend_cpu(self, mlp_class_name: str = "MlpPolicy") -> None:
        super()._maybe_recommend_cpu(mlp_class_name)

    def _excluded_save_params(self) -> list[str]:
        # the last update's results describe this session's training, not the model: a loaded model starts at None
        return [*super()._excluded_save_params(), "_actor_params", "_critic_params", "last_policy_step", "last_critic_fit"]

    def train(self) -> None:
        """Update the actor by one trust-region step and the critic by regression, on the whole rollout."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        rollout = next(self.rollout_buffer.get(batch_size=None))

        step_start = time.perf_counter()
        step = self._policy_step(rollout)  # steps 1-5: gradient, Fisher-vector product, CG, step size, line search
        policy_step_seconds = time.perf_counter() - step_start
        if step.outcome != "accepted":
            self._record_rejection(step.outcome)

        critic_start = time.perf_counter()
        fit = self._fit_critic(rollout)  # step 6: critic regression
        critic_seconds = time.perf_counter() - critic_start

        self._n_updates += 1
        self.last_policy_step, self.last_critic_fit = step, fit
        self._log_update(step, fit, policy_step_seconds, critic_seconds)
        self._unmerged_observations = True  # merged before the next rollout (or at the end of learn())

    def _policy_step(self, rollout: Rollout) -> PolicyStepResult:
        """
        One trust-region step of the actor on the whole rollout. The actor's parameters end at the
        accepted candidate, or at :math:`\\theta_{old}` exactly when the step is rejected, whatever
        happens (also when an exception interrupts it).
        """
        actions = rollout.actions.long().flatten() if isinstance(self.action_space, spaces.Discrete) else rollout.actions
        actor_params = self._actor_params
        mask = self._state_mask(rollout)  # the states of every mean (None: all of them)
        target_kl = self._current_target_kl()

        # 1. Surrogate L(theta) = mean[ pi_theta(a|s) / pi_old(a|s) * A ] and its gradient g.
        advantages = rollout.advantages
        if self.normalize_advantage:
            kept = advantages if mask is None else advantages[mask]
            advantages = (advantages - kept.mean()) / (kept.std() + 1e-8)
        with th.no_grad():
            old_distribution = self._action_distribution(rollout)
        distribution = self._action_distribution(rollout)
        surrogate = self._surrogate(distribution, actions, rollout.old_log_prob, advantages, mask)
        fvp_reuses_graph = self.sub_sampling_factor == 1
        policy_gradient = flat_concat(th.autograd.grad(surrogate, actor_params, retain_graph=fvp_reuses_graph))
        result = functools.partial(
            PolicyStepResult,
            surrogate=surrogate.item(),
            entropy=_mean_entropy(old_distribution, mask),
            std=_mean_std(old_distribution, mask),
            target_kl=target_kl,
            cg_damping=self._current_cg_damping(),
        )
        if not bool(th.isfinite(policy_gradient).all()):
            return result("nonfinite_gradient")

        # 2. Fisher-vector product v -> (F + lambda I) v at theta_old, on every k-th state.
        fvp_distribution, fvp_mask = (distribution, mask) if fvp_reuses_graph else self._fisher_distribution(rollout)
        fisher_vector_product = self._fisher_vector_product(fvp_distribution, fvp_mask)

        # 3. Conjugate gradient: x ~ (F + lambda I)^-1 g.
        cg = self._solve(fisher_vector_product, policy_gradient)
        result = functools.partial(result, cg_iterations=cg.iterations, cg_residual=cg.residual_squared_norm)
        if not cg.converged_normally or not bool(th.isfinite(cg.x).all()):
            return result("cg_breakdown")

        # 4. Full step beta * x, beta = sqrt(2 delta / x^T (F + lambda I) x), x^T (F + lambda I) x from CG.
        beta = trust_region_step_size(cg.x_a_x, target_kl)
        if not math.isfinite(beta):
            return result("degenerate_step")
        full_step = beta * cg.x
        expected_improvement = float(policy_gradient.dot(full_step))
        del fisher_vector_product, fvp_distribution, distribution  # free the autograd graph

        # 5. Backtracking line search: the first theta_old + alpha^j * beta * x that improves L
        #    with mean KL(pi_old || pi_new) <= delta; otherwise theta_old, restored exactly.
        def evaluate_candidate() -> tuple[float, float]:
            with th.no_grad():
                candidate = self._action_distribution(rollout)
                new_surrogate = self._surrogate(candidate, actions, rollout.old_log_prob, advantages, mask)
                return float(new_surrogate - surrogate), float(masked_mean(full_kl(old_distribution, candidate), mask))

        search = self._line_search(full_step, expected_improvement, evaluate_candidate, target_kl)
        result = functools.partial(result, expected_improvement=expected_improvement, line_search_steps=search.steps)
        if not search.accepted:
            return result("line_search_failed")
        return result(
            "accepted",
            improvement=search.improvement,
            kl=search.kl,
            step_norm=search.fraction * float(th.linalg.vector_norm(full_step)),
        )

    def _fisher_vector_product(self, distribution: Distribution, mask: th.Tensor | None) -> Callable[[th.Tensor], th.Tensor]:
        """
        Step 2: the damped Fisher-vector product :math:`v \\mapsto (F + \\lambda I) v` at :math:`\\theta_{old}`,
        :func:`~sb3_trpo_critic.trust_region.make_fisher_vector_product` with this model's damping
        (:meth:`_current_cg_damping`).
        A subclass with another product (or another curvature matrix) overrides this method.

        :param distribution: the action distribution on the product's states (every ``sub_sampling_factor``-th),
            computed from the actor's parameters with its autograd graph (it is differentiated, not updated)
        :param mask: which of those states count (``None``: all; recurrent rollouts mask their padding)
        :return: a function of a flat vector the size of the actor's parameters
            (:func:`~sb3_trpo_critic.trust_region.flat_concat` order) to a vector of the same size. An override
            must return a symmetric positive-definite linear map (conjugate gradient assumes it), must not
            change the actor's parameters, and may be called up to ``cg_max_steps`` times (by the default
            :meth:`_solve`), before the line search.
        """
        return make_fisher_vector_product(distribution, self._actor_params, self._current_cg_damping(), mask)

    def _solve(self, fisher_vector_product: Callable[[th.Tensor], th.Tensor], gradient: th.Tensor) -> CGResult:
        """
        Step 3: :math:`x \\approx (F + \\lambda I)^{-1} g`, :func:`~sb3_trpo_critic.trust_region.conjugate_gradient`
        with this model's ``cg_max_steps`` and ``cg_residual_tol``. A subclass with another solver (a
        preconditioner, another stopping rule) overrides this method.

        :param fisher_vector_product: :math:`v \\mapsto (F + \\lambda I) v`, from :meth:`_fisher_vector_product`
        :param gradient: :math:`g`, the surrogate's gradient (flat, finite)
        :return: a :class:`~sb3_trpo_critic.trust_region.CGResult`. An override must return the direction ``x``
            (flat, like ``gradient``), ``x_a_x`` :math:`= x^\\top (F + \\lambda I) x` (the step size
            :math:`\\beta` is computed from it: a wrong value scales the full step, which the line search
            then checks against the real KL), and ``converged_normally=False`` where the solve broke down;
            a breakdown or a non-finite ``x`` rejects the step (``cg_breakdown``). ``iterations`` and
            ``residual_squared_norm`` are logged (``train/cg_iterations``, ``train/cg_residual``).
        """
        return conjugate_gradient(fisher_vector_product, gradient, self.cg_max_steps, self.cg_residual_tol)

    def _line_search(
        self,
        full_step: th.Tensor,
        expected_improvement: float,
        evaluate: Callable[[], tuple[float, float]],
        target_kl: float,
    ) -> LineSearchResult:
        """
        Step 5: :func:`~sb3_trpo_critic.trust_region.backtracking_line_search` along ``full_step`` with this
        model's hyperparameters. A subclass with another line search overrides this method; it must leave
        the actor at an accepted candidate or exactly at :math:`\\theta_{old}` (also when ``evaluate`` raises),
        and return where it left it (``accepted``, ``steps``, ``fraction`` of ``full_step``, and the accepted
        candidate's ``improvement`` and ``kl``, which are logged).
        """
        return backtracking_line_search(
            self._actor_params,
            full_step,
            expected_improvement,
            evaluate,
            target_kl=target_kl,
            shrinking_factor=self.line_search_shrinking_factor,
            max_iter=self.line_search_max_iter,
            accept_ratio=self.line_search_accept_ratio,
        )

    def _fit_critic(self, rollout: Rollout) -> CriticFitResult:
        """
        Step 6: ``n_critic_updates`` epochs of minibatch MSE regression of :math:`V(s)` on the returns, with the
        critic's own optimizer. The actor's parameters are frozen meanwhile: a parameter shared by both
        (``share_features_extractor=True``) gets no gradient from the critic and keeps its value.
        A subclass with another regression overrides this method; it must not change the actor's
        parameters, and returns the losses before and after and the optimizer steps taken (logged).
        """
        with th.no_grad():
            loss_before = float(self._value_loss(rollout))
        updates = 0
        if math.isfinite(loss_before):  # non-finite returns would poison the critic
            with _frozen(self._actor_params):
                for _ in range(self.n_critic_updates):
                    for batch in self._critic_minibatches(rollout):
                        value_loss = self._value_loss(batch)
                        self.policy.optimizer.zero_grad(set_to_none=True)
                        value_loss.backward()
                        if self.critic_max_grad_norm is not None:
                            th.nn.utils.clip_grad_norm_(self._critic_params, self.critic_max_grad_norm)
                        self.policy.optimizer.step()
                        updates += 1
        with th.no_grad():
            loss_after = float(self._value_loss(rollout))
        return CriticFitResult(loss_before, loss_after, updates)

    def _critic_minibatches(self, rollout: Rollout) -> Iterator[Rollout]:
        """
        One epoch of the critic's minibatches: the rollout's states in random order, ``batch_size`` at a time
        (only ``observations`` and ``returns``, all the critic reads, are cut to the minibatch).
        """
        for indices in th.randperm(rollout.returns.shape[0], device=self.device).split(self.batch_size):
            observations = _index(rollout.observations, indices)
            yield rollout._replace(observations=observations, returns=rollout.returns[indices])  # type: ignore[arg-type]

    def _value_loss(self, batch: Rollout) -> th.Tensor:
        """The critic's loss on a batch: :math:`\\frac{1}{N} \\sum_s (V(s) - \\hat R_s)^2`."""
        return F.mse_loss(self.policy.predict_values(batch.observations).flatten(), batch.returns)

    def _record_rejection(self, outcome: str) -> None:
        """Count a rejected policy step; warn when non-finite numbers keep rejecting steps."""
        self.rejected_steps[outcome] = self.rejected_steps.get(outcome, 0) + 1
        self._rejection_streak = self._rejection_streak + 1 if outcome == self._last_rejection else 1
        self._last_rejection = outcome
        if self.verbose >= 2 or (self.verbose >= 1 and outcome != "line_search_failed"):
            print(f"TRPOCritic: policy step rejected ({outcome}); the actor is unchanged")
        if outcome in NUMERICAL_REJECTIONS and self._rejection_streak == NUMERICAL_REJECTION_WARNING_STREAK:
            warnings.warn(
                f"TRPOCritic: the last {self._rejection_streak} policy steps (up to update {self._n_updates + 1}, "
                f"{self.num_timesteps} env steps) were all rejected as {outcome!r}: the actor is not learning. "
                "Non-finite numbers reach the update: check the rewards, the observations and VecNormalize's "
                "statistics (see 'Troubleshooting' in the docs' metrics page).",
                RuntimeWarning,
                stacklevel=3,
            )

    def _log_update(
        self, step: PolicyStepResult, fit: CriticFitResult, policy_step_seconds: float, critic_seconds: float
    ) -> None:
        """Record this update's ``train/`` values: one per row of :data:`~sb3_trpo_critic.logged.LOGGED_VALUES`."""
        update = UpdateRecord(
            step=step,
            fit=fit,
            n_rejected_steps=sum(self.rejected_steps.values()),
            explained_variance=explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()),
            policy_step_time=policy_step_seconds,
            critic_time=critic_seconds,
            n_updates=self._n_updates,
        )
        for row in LOGGED_VALUES:
            if row.source is None:  # logged by SB3 (train/learning_rate)
                continue
            value = row.value(update)
            if value is None and not row.every_update:
                continue
            self.logger.record(row.key, value, exclude=row.exclude)

    def _current_target_kl(self) -> float:
        """
        :math:`\\delta` of this update: ``target_kl``, or its schedule at the progress remaining (at least 0);
        for ``target_kl=None``, :data:`TARGET_KL_PER_DIMENSION` per dimension of the action space.
        """
        if self.target_kl is None:
            return TARGET_KL_PER_DIMENSION * kl_dimensions(self.action_space)
        if callable(self.target_kl):
            return max(float(self.target_kl(self._current_progress_remaining)), 0.0)
        return self.target_kl

    def _current_cg_damping(self) -> float:
        """
        :math:`\\lambda` of the Fisher matrix: ``cg_damping``; for ``cg_damping=None``,
        :data:`CG_DAMPING_PER_DIMENSION` per dimension of the action space.
        """
        if self.cg_damping is None:
            return CG_DAMPING_PER_DIMENSION * kl_dimensions(self.action_space)
        return self.cg_damping

    def _action_distribution(self, rollout: Rollout) -> Distribution:
        """The policy's action distribution on the rollout's states, at the actor's current parameters."""
        return self._distribution(rollout.observations)

    def _fisher_distribution(self, rollout: Rollout) -> tuple[Distribution, th.Tensor | None]:
        """The distribution on the states of the Fisher-vector products (every ``sub_sampling_factor``-th) and their mask."""
        return self._distribution(self._subsample(rollout.observations)), None

    def _state_mask(self, rollout: Rollout) -> th.Tensor | None:
        """Which of the rollout's states are data (``None``: all; recurrent rollouts have padding)."""
        return None

    def _distribution(self, obs: PyTorchObs) -> Distribution:
        # SB3 policies return the same, mutated distribution object on every call: keep a copy.
        return copy.copy(self.policy.get_distribution(obs))

    @staticmethod
    def _surrogate(
        distribution: Distribution,
        actions: th.Tensor,
        old_log_prob: th.Tensor,
        advantages: th.Tensor,
        mask: th.Tensor | None = None,
    ) -> th.Tensor:
        ratio = th.exp(distribution.log_prob(actions) - old_log_prob)
        return masked_mean(ratio * advantages, mask)

    def _subsample(self, obs: PyTorchObs) -> PyTorchObs:
        step = self.sub_sampling_factor
        if isinstance(obs, dict):
            return {key: value[::step] for key, value in obs.items()}
        return obs[::step]

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """
        SB3's ``collect_rollouts``, unchanged, with torch's argument validation of the action distribution
        turned off meanwhile (restored afterwards): it checks the distribution's parameters on every forward
        pass of the policy, on ``n_envs`` observations at a time, where :class:`~sb3_trpo_critic.guards.NonFiniteRolloutCheck`
        already checks every observation once. First, the last update's rollout is merged into the
        observation statistics (``normalize_observations``).
        """
        self._merge_observation_statistics()
        with distribution_validation_off():
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        """SB3's callbacks, with :class:`~sb3_trpo_critic.guards.NonFiniteRolloutCheck` run first."""
        callbacks = callback if isinstance(callback, list) else [] if callback is None else [callback]
        callbacks = [item if isinstance(item, BaseCallback) else ConvertCallback(item) for item in callbacks]
        return super()._init_callback([NonFiniteRolloutCheck(), *callbacks], progress_bar)

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfTRPOCritic],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfTRPOCritic:
        """
        Load a model saved by :meth:`save`, as SB3's ``load`` does, after checking the file: a truncated or
        corrupt zip, or a model saved by another algorithm (``sb3_contrib.TRPO``, PPO, ...), raises a
        ``ValueError`` that says so (see :func:`~sb3_trpo_critic.guards.check_save_file`).
        """
        check_save_file(path, cls.__name__)
        model: SelfTRPOCritic = super().load(  # type: ignore[assignment]
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )
        model._check_normalized_once()
        return model

    def learn(
        self: SelfTRPOCritic,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "TRPOCritic",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfTRPOCritic:
        """SB3's ``learn``; at its end the last update's rollout is merged into the observation statistics."""
        super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
        self._merge_observation_statistics()
        return self


def default_log_std_init(action_space: spaces.Space) -> float | None:
    """
    The policy's initial log standard deviation when ``policy_kwargs`` does not set ``log_std_init``:
    :math:`\\log \\sigma_0 = \\frac{1}{2} \\log(V / d)` on a ``d``-dimensional Box action, so that the initial
    noise has the total variance :math:`d \\sigma_0^2 = V` (:data:`INITIAL_ACTION_NOISE_VARIANCE`, 1): 0 (SB3's
    default, :math:`\\sigma_0 = 1`) on a 1-D action, :math:`\\sigma_0 = 1/\\sqrt{6}` (-0.90) on a 6-D one.

    :param action_space: the environment's action space
    :return: the log standard deviation, or ``None`` where the policy has no Gaussian (not a Box action)
    """
    if not isinstance(action_space, spaces.Box):
        return None
    return 0.5 * math.log(INITIAL_ACTION_NOISE_VARIANCE / kl_dimensions(action_space))


def _normalizes_observations(env: VecEnv | None) -> bool:
    """Whether ``env`` is wrapped in ``VecNormalize(norm_obs=True)``."""
    vec_normalize = None if env is None else unwrap_vec_normalize(env)
    return vec_normalize is not None and vec_normalize.norm_obs


def _warn_normalized_twice(what: str) -> None:
    warnings.warn(
        f"{what} on an environment wrapped in VecNormalize(norm_obs=True): the observations are normalized twice "
        "(by VecNormalize, then by the policy); pass normalize_observations=False when building the model, or "
        "VecNormalize(norm_obs=False)",
        UserWarning,
        stacklevel=4,
    )


@contextlib.contextmanager
def distribution_validation_off() -> Iterator[None]:
    """Turn off torch's argument validation of distributions for the block (restored afterwards)."""
    validate = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        th.distributions.Distribution.set_default_validate_args(validate)


@contextlib.contextmanager
def _frozen(params: list[th.nn.Parameter]) -> Iterator[None]:
    """Turn off ``requires_grad`` of ``params`` for the block (restored afterwards, also on an exception)."""
    flags = [param.requires_grad for param in params]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(params, flags, strict=True):
            param.requires_grad_(flag)


def _index(obs: PyTorchObs, indices: th.Tensor) -> PyTorchObs:
    if isinstance(obs, dict):
        return {key: value[indices] for key, value in obs.items()}
    return obs[indices]


def _mean_entropy(distribution: Distribution, mask: th.Tensor | None = None) -> float:
    entropy = distribution.entropy()
    return float("nan") if entropy is None else float(masked_mean(entropy, mask))


def _mean_std(distribution: Distribution, mask: th.Tensor | None = None) -> float | None:
    scale = getattr(distribution.distribution, "scale", None)
    if scale is None:
        return None
    return float(scale.mean() if mask is None else scale[mask].mean())


def _validate_hyperparameters(**values: Any) -> None:
    """Raise :class:`HyperparameterError` naming the first hyperparameter outside its allowed range."""

    def finite(x: Any) -> bool:
        return isinstance(x, (int, float, np.number)) and not isinstance(x, bool) and math.isfinite(x)

    def at_start(x: Any) -> Any:
        return x(1.0) if callable(x) else x

    def integer(x: Any) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, bool)

    rules: dict[str, tuple[Any, str]] = {
        "n_steps": (lambda x: integer(x) and x >= 1, "an integer >= 1"),
        "batch_size": (lambda x: integer(x) and x >= 1, "an integer >= 1"),
        "gamma": (lambda x: finite(x) and 0 <= x <= 1, "in [0, 1]"),
        "gae_lambda": (lambda x: finite(x) and 0 <= x <= 1, "in [0, 1]"),
        "cg_max_steps": (lambda x: integer(x) and x >= 1, "an integer >= 1"),
        "cg_damping": (lambda x: x is None or (finite(x) and x >= 0), "None or a finite number >= 0"),
        "cg_residual_tol": (lambda x: finite(x) and x >= 0, "a finite number >= 0"),
        "line_search_shrinking_factor": (lambda x: finite(x) and 0 < x < 1, "in the open interval (0, 1)"),
        "line_search_max_iter": (lambda x: integer(x) and x >= 1, "an integer >= 1"),
        "line_search_accept_ratio": (lambda x: finite(x) and 0 <= x < 1, "in [0, 1)"),
        "n_critic_updates": (lambda x: integer(x) and x >= 0, "an integer >= 0"),
        "target_kl": (
            lambda x: x is None or (finite(at_start(x)) and at_start(x) > 0),
            "None (0.01 per action dimension), a finite number > 0, or a schedule whose value at the start "
            "(progress remaining 1) is one",
        ),
        "sub_sampling_factor": (lambda x: integer(x) and x >= 1, "an integer >= 1"),
        "critic_max_grad_norm": (lambda x: x is None or (finite(x) and x > 0), "None or a finite number > 0"),
        "learning_rate": (lambda x: callable(x) or (finite(x) and x > 0), "a finite number > 0 or a schedule"),
    }
    for name, value in values.items():
        check, allowed = rules[name]
        if not check(value):
            raise HyperparameterError(f"{name} must be {allowed}, got {value!r}")
