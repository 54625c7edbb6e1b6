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
