"""The update-cost benchmark's building blocks (the timings themselves belong to the benchmark, not here)."""

import pytest
import torch as th
from sb3_contrib import TRPO

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.update_cost import build, time_train

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("algo", [TRPOCritic, TRPO])
def test_build_takes_the_rollout_shape_and_device_and_time_train_splits_the_update(algo, device):
    model = build(algo, "Pendulum-v1", seed=0, device=device, n_envs=4, n_steps=32)
    assert (model.n_envs, model.n_steps, model.device.type) == (4, 32, device)
    total, policy, cg_iterations = time_train(model)
    assert 0 < policy < total
    assert cg_iterations >= 1


def test_build_passes_extra_constructor_arguments():
    model = build(TRPOCritic, "Pendulum-v1", seed=0, n_envs=1, n_steps=16, extra={"cg_residual_tol": 1e-3})
    assert model.cg_residual_tol == 1e-3
    assert build(TRPOCritic, "Pendulum-v1", seed=0, n_envs=1, n_steps=16).cg_residual_tol == 1e-10


ENTRY = {  # rl-zoo3's trpo.yml HalfCheetah-v4 entry (HalfCheetah-v5 has none), as both models get it
    "n_envs": 2,
    "n_steps": 1024,
    "batch_size": 128,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "sub_sampling_factor": 1,
    "cg_max_steps": 25,
    "cg_damping": 0.1,
    "n_critic_updates": 20,
}


def arguments(model):
    return {key: getattr(model, key) for key in ENTRY} | {
        "learning_rate": model.lr_schedule(1.0),
        "target_kl": model.target_kl,
    }


def test_both_models_get_sb3_contribs_zoo_entry_and_target_kl():
    pytest.importorskip("mujoco", reason='MuJoCo is not installed: pip install -e ".[mujoco]"')
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_trpo_critic.benchmarks.update_cost import TARGET_KL
    from sb3_trpo_critic.zoo import load_zoo_hyperparameters

    zoo = load_zoo_hyperparameters("trpo", "HalfCheetah-v5")
    assert zoo.model_kwargs["target_kl"] == 0.04 and TARGET_KL == 0.01  # the entry's is replaced by sb3_contrib's default
    expected = ENTRY | {"learning_rate": 1e-3, "target_kl": 0.01}
    models = [build(algo, "HalfCheetah-v5", seed=0) for algo in (TRPOCritic, TRPO)]
    for model in models:
        assert arguments(model) == expected, type(model).__name__  # identical arguments (TRPOCritic's own default differs)
        assert isinstance(model.env, VecNormalize) and model.env.gamma == 0.99
    # the equivalent trust region: target_kl and cg_damping times the 6 action dimensions, for TRPOCritic only
    same_step = arguments(build(TRPOCritic, "HalfCheetah-v5", seed=0, same_step=True))
    assert same_step == expected | {"target_kl": pytest.approx(0.06), "cg_damping": pytest.approx(0.6)}
    # --hyperparams: keys of the entry, target_kl included, for both
    for algo in (TRPOCritic, TRPO):
        changed = build(algo, "HalfCheetah-v5", seed=0, n_steps=512, hyperparams=(("target_kl", 0.04), ("n_envs", 1)))
        assert arguments(changed) == expected | {"target_kl": 0.04, "n_envs": 1, "n_steps": 512}


def test_time_train_counts_the_cg_iterations_of_the_update():
    model = build(TRPOCritic, "Pendulum-v1", seed=0, n_envs=2, n_steps=64)
    _, _, cg_iterations = time_train(model)
    assert model.last_policy_step is not None
    assert cg_iterations == model.last_policy_step.cg_iterations == model.logger.name_to_value["train/cg_iterations"] >= 1


class CountingSolves(TRPOCritic):
    """A TRPOCritic subclass with a hook overridden, as the experiments build them."""

    solves = 0

    def _solve(self, fisher_vector_product, gradient):
        CountingSolves.solves += 1
        return super()._solve(fisher_vector_product, gradient)


def test_main_builds_the_given_trpo_critic_class(capsys):
    from sb3_trpo_critic.benchmarks import update_cost

    CountingSolves.solves = 0
    argv = ["--env", "Pendulum-v1", "--repetitions", "2", "--warmup", "1", "--threads", "1", "--n-envs", "1"]
    update_cost.main([*argv, "--n-steps", "64", "--hyperparams", "target_kl:0.02"], trpo_critic_class=CountingSolves)
    assert CountingSolves.solves == 3  # one update per repetition, warm-up included
    out = capsys.readouterr().out
    assert "trpo_critic_class=CountingSolves" in out and "rollout=1x64 target_kl=0.02/0.02" in out
    assert "hyperparams=target_kl:0.02" in out and "ratio TRPOCritic / sb3_contrib.TRPO, policy step" in out
