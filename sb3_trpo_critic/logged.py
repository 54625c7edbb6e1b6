"""
The ``train/`` values TRPOCritic logs once per update, in one table: :data:`LOGGED_VALUES`.

Each row names a key, says what it means, and how its value is computed from the update's typed
results (:class:`~sb3_trpo_critic.trpo_critic.PolicyStepResult`,
:class:`~sb3_trpo_critic.trpo_critic.CriticFitResult`, gathered in an :class:`UpdateRecord`).
:meth:`TRPOCritic._log_update <sb3_trpo_critic.TRPOCritic>` records one value per row, in the table's
order; the tests read the keys from it; the documentation's metrics page renders it
(``docs/_ext/logged_values.py``). A new logged value is one new row here.

The texts are MyST Markdown (the metrics page's syntax): ``$...$`` math, backquoted code, ``{ref}`` roles.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from sb3_trpo_critic.trpo_critic import CriticFitResult, PolicyStepResult

#: The tables of the metrics page, in order: each row belongs to one.
GROUPS = ("policy step", "critic", "time")


class UpdateRecord(NamedTuple):
    """Everything one update's logged values are computed from."""

    #: what the policy step did (:meth:`TRPOCritic._policy_step`)
    step: PolicyStepResult
    #: what the critic's regression did (:meth:`TRPOCritic._fit_critic`)
    fit: CriticFitResult
    #: policy steps rejected since the model was created (the sum of ``TRPOCritic.rejected_steps``)
    n_rejected_steps: int
    #: SB3's ``explained_variance`` of the rollout buffer's values (predicted during collection) and returns
    explained_variance: float
    #: seconds of the policy step (``_policy_step``)
    policy_step_time: float
    #: seconds of the critic's regression (``_fit_critic``)
    critic_time: float
    #: the number of updates so far, this one included
    n_updates: int


def policy_objective(update: UpdateRecord) -> float:
    """``step.surrogate + step.improvement``"""
    return update.step.surrogate + update.step.improvement


def is_line_search_success(update: UpdateRecord) -> float:
    """``float(step.outcome == "accepted")``"""
    return float(update.step.outcome == "accepted")


class LoggedValue(NamedTuple):
    """One row of :data:`LOGGED_VALUES`: a ``train/`` key, what it means, and how it is computed."""

    #: the logger's key, ``train/...``
    key: str
    #: the table of the metrics page it is in (one of :data:`GROUPS`)
    group: str
    #: what it is
    meaning: str
    #: how its value is computed from the :class:`UpdateRecord`: the dotted name of a field
    #: (``"step.kl"``: :attr:`PolicyStepResult.kl <sb3_trpo_critic.trpo_critic.PolicyStepResult.kl>`), or a
    #: function of the record whose docstring says what it computes. ``None``: SB3 logs it, not
    #: ``_log_update``.
    source: str | Callable[[UpdateRecord], Any] | None
    #: how to read it (advice; may be empty)
    reading: str = ""
    #: the logger's ``exclude``: output formats that do not get it (``"tensorboard"``: no strings there)
    exclude: str | None = None
    #: ``False``: logged only when its value is not ``None`` (``std``: Gaussian policies only)
    every_update: bool = True
    #: a wall-clock time, different on every run (the tests do not compare it)
    timing: bool = False

    def value(self, update: UpdateRecord) -> Any:
        """The value to log for ``update`` (``None``: not logged this time)."""
        if self.source is None:
            raise ValueError(f"{self.key} is logged by SB3, not computed from an UpdateRecord")
        if isinstance(self.source, str):
            return operator.attrgetter(self.source)(update)
        return self.source(update)


#: Every ``train/`` key logged once per update, in the order :meth:`TRPOCritic._log_update` records them.
LOGGED_VALUES: tuple[LoggedValue, ...] = (
    LoggedValue(
        "train/policy_objective",
        "policy step",
        r"$L(\theta_{new})$ with the (normalized) advantages; $L(\theta_{old})$ is the mean advantage, "
        "0 after normalization",
        policy_objective,
        "with `normalize_advantage=True` it is about `surrogate_improvement`",
    ),
    LoggedValue(
        "train/kl_divergence",
        "policy step",
        r"mean over the rollout of the full KL $D_{KL}(\pi_{old} \| \pi_{new})$ after the accepted step; 0 when rejected",
        "step.kl",
        "at most `target_kl`; a healthy run uses a good fraction of it",
    ),
    LoggedValue(
        "train/target_kl",
        "policy step",
        r"the trust region radius $\delta$ of this update: `target_kl`, or its schedule's value at this point of "
        "training (`target_kl=None`: 0.01 per action dimension)",
        "step.target_kl",
        "constant unless `target_kl` is a schedule",
    ),
    LoggedValue(
        "train/cg_damping",
        "policy step",
        r"the damping $\lambda$ of this update's Fisher matrix: `cg_damping` (`cg_damping=None`: 0.1 per action "
        "dimension)",
        "step.cg_damping",
        "constant",
    ),
    LoggedValue(
        "train/surrogate_improvement",
        "policy step",
        r"$L(\theta_{new}) - L(\theta_{old})$; 0 when rejected",
        "step.improvement",
        "> 0 whenever accepted",
    ),
    LoggedValue(
        "train/expected_improvement",
        "policy step",
        r"$g^\top \beta x$, the linear model's prediction for the full step",
        "step.expected_improvement",
        r"the accepted candidate was predicted to gain $\alpha^{j}$ times this, $j$ = `line_search_steps` − 1; "
        "an actual `surrogate_improvement` far below that means the linear model is poor",
    ),
    LoggedValue(
        "train/is_line_search_success",
        "policy step",
        "1 if the step was accepted, else 0",
        is_line_search_success,
        "its running mean is the acceptance rate",
    ),
    LoggedValue(
        "train/line_search_steps",
        "policy step",
        "candidates evaluated (1 = the full step was accepted)",
        "step.line_search_steps",
        "often more than 2 or 3: the quadratic model overestimates how far it can go",
    ),
    LoggedValue(
        "train/step_outcome",
        "policy step",
        "`accepted`, `line_search_failed`, `nonfinite_gradient`, `cg_breakdown` or `degenerate_step` ({ref}`line-search`)",
        "step.outcome",
        "a string: stdout and CSV only, not TensorBoard",
        exclude="tensorboard",
    ),
    LoggedValue(
        "train/n_rejected_steps",
        "policy step",
        "rejected steps since the model was created",
        "n_rejected_steps",
        "a steadily rising count is a problem; an occasional rejection is not",
    ),
    LoggedValue(
        "train/cg_iterations",
        "policy step",
        "CG's iterations, one Fisher-vector product each",
        "step.cg_iterations",
        r"= `cg_max_steps` is common and fine; 0 means $\|g\|^2$ was below `cg_residual_tol`",
    ),
    LoggedValue(
        "train/cg_residual",
        "policy step",
        r"CG's final $\|g - (F+\lambda I)x\|^2$",
        "step.cg_residual",
        "below `cg_residual_tol` when CG stopped on its tolerance rather than at `cg_max_steps`",
    ),
    LoggedValue(
        "train/step_norm",
        "policy step",
        "Euclidean norm of the accepted parameter change; 0 when rejected",
        "step.step_norm",
        "how far the parameters moved for the given KL",
    ),
    LoggedValue(
        "train/entropy",
        "policy step",
        "mean entropy of the action distribution before the step",
        "step.entropy",
        "slowly decreasing as the policy commits; a collapse early on means premature convergence",
    ),
    LoggedValue(
        "train/std",
        "policy step",
        "mean standard deviation of a Gaussian policy before the step (Box actions only: not logged for others)",
        "step.std",
        "as `entropy`, in action units",
        every_update=False,
    ),
    LoggedValue(
        "train/value_loss_before",
        "critic",
        r"MSE of $V(s)$ against $\hat R$ on the whole rollout, before the `n_critic_updates` epochs",
        "fit.loss_before",
        "with `value_loss`: how much the epochs fit this rollout",
    ),
    LoggedValue(
        "train/value_loss",
        "critic",
        r"MSE of $V(s)$ against $\hat R$ on the whole rollout, after the `n_critic_updates` epochs",
        "fit.loss_after",
        "barely below `value_loss_before`: under-fitting; far below it: possibly over-fitting one rollout "
        "(see the troubleshooting below)",
    ),
    LoggedValue(
        "train/critic_updates",
        "critic",
        r"optimizer steps taken: `n_critic_updates` $\times \lceil N/\texttt{batch\_size}\rceil$",
        "fit.updates",
        "0 if the returns were not finite (the critic is then left untouched)",
    ),
    LoggedValue(
        "train/explained_variance",
        "critic",
        r"$1 - \mathrm{Var}[\hat R - V] / \mathrm{Var}[\hat R]$ on the rollout, with the values $V$ predicted during "
        "collection, i.e. by the critic *before* this update's regression",
        "explained_variance",
        "1: perfect; 0: no better than a constant; < 0: worse than a constant",
    ),
    LoggedValue(
        "train/learning_rate",
        "critic",
        "the critic's current learning rate",
        None,
        "follows the schedule, if any",
    ),
    LoggedValue(
        "train/policy_step_time",
        "time",
        "seconds of the policy step: surrogate, gradient, CG, line search",
        "policy_step_time",
        timing=True,
    ),
    LoggedValue(
        "train/critic_time",
        "time",
        "seconds of the critic epochs",
        "critic_time",
        timing=True,
    ),
    LoggedValue(
        "train/n_updates",
        "time",
        "number of updates so far (not in TensorBoard)",
        "n_updates",
        exclude="tensorboard",
    ),
)
