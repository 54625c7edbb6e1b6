"""sb3_contrib.TRPO's hyperparameters translated to TRPOCritic's (:mod:`sb3_trpo_critic.translate`)."""

import pytest


def test_from_sb3_contrib_translation():
    from gymnasium import spaces

    from sb3_trpo_critic import from_sb3_contrib as translate

    box6 = spaces.Box(-1.0, 1.0, (6,))
    assert translate({"target_kl": 0.04}, box6)["target_kl"] == pytest.approx(0.24)
    same = translate({"target_kl": 0.04, "cg_damping": 0.1}, box6, same_step=True)
    assert same["target_kl"] == pytest.approx(0.24) and same["cg_damping"] == pytest.approx(0.6)
    # sb3_contrib's defaults: 0.01, 0.1 and a standard deviation of 1 (TRPOCritic's own defaults differ on a Box(6))
    assert translate({}, box6) == {"target_kl": pytest.approx(0.06), "cg_damping": 0.1, "policy_kwargs": {"log_std_init": 0.0}}
    assert translate({}, box6, same_step=True)["cg_damping"] == pytest.approx(0.6)
    assert translate({"policy_kwargs": {"log_std_init": -1.0, "ortho_init": False}}, box6)["policy_kwargs"] == {
        "log_std_init": -1.0,
        "ortho_init": False,
    }
    assert "policy_kwargs" not in translate({"use_sde": True}, box6)  # gSDE's log_std_init is another parameter
    assert translate({"target_kl": 0.02}, spaces.Discrete(4)) == {"target_kl": 0.02, "cg_damping": 0.1}
    assert translate({"target_kl": 0.01}, spaces.MultiBinary(3))["target_kl"] == pytest.approx(0.03)


def test_from_sb3_contrib_translation_takes_the_same_step():
    """The docs' claim: with cg_damping scaled by d, TRPOCritic's Fisher system is d times sb3_contrib's,
    so conjugate gradient finds the same direction up to the factor d (and beta scales it back)."""
    import torch as th
    from stable_baselines3.common.distributions import DiagGaussianDistribution, kl_divergence

    from sb3_trpo_critic.trust_region import conjugate_gradient, make_fisher_vector_product

    d, damping = 6, 0.1
    net = th.nn.Linear(5, d)
    log_std = th.nn.Parameter(0.3 * th.randn(d))
    params = [*net.parameters(), log_std]
    obs = th.randn(64, 5)

    def distribution() -> DiagGaussianDistribution:
        return DiagGaussianDistribution(d).proba_distribution(net(obs), log_std)

    with th.no_grad():
        old = distribution()
    g = th.cat([p.reshape(-1) for p in th.autograd.grad(distribution().log_prob(th.randn(64, d)).mean(), params)])

    def averaged_fvp(v: th.Tensor) -> th.Tensor:
        # sb3_contrib.TRPO's product: Hessian of its KL (new || old), averaged over the d dimensions
        kl = kl_divergence(distribution(), old).mean()
        grad = th.cat([x.reshape(-1) for x in th.autograd.grad(kl, params, create_graph=True)])
        return th.cat([x.reshape(-1) for x in th.autograd.grad(grad.dot(v), params)]) + damping * v

    ours = conjugate_gradient(make_fisher_vector_product(distribution(), params, d * damping), g, 500, 1e-24)
    theirs = conjugate_gradient(averaged_fvp, g, 500, 1e-24)
    assert th.allclose(d * ours.x, theirs.x, rtol=1e-3, atol=1e-6)
    # beta * x: beta = sqrt(2 delta / x^T A x) with delta and A both scaled by d gives the same step
    ours_fx = make_fisher_vector_product(distribution(), params, d * damping)(ours.x)
    ours_step = th.sqrt(2 * (d * 0.01) / ours.x.dot(ours_fx)) * ours.x
    theirs_step = th.sqrt(2 * 0.01 / theirs.x.dot(averaged_fvp(theirs.x))) * theirs.x
    assert th.allclose(ours_step, theirs_step, rtol=1e-3, atol=1e-6)
