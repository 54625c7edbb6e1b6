"""TRPOCritic runs on the device SB3 selects: CUDA when there is one, the CPU otherwise.

Every test is written over a pair of devices. The pairs with "cuda" are skipped without CUDA; the
pair ("cpu", "cpu") always runs, so that the checks themselves are exercised on any machine.
Correctness only: timings belong in ``sb3_trpo_critic/benchmarks/``.
"""

from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv

from sb3_trpo_critic import TRPOCritic
from tests.envs import BoxTargetEnv
from tests.training import TRAIN_VALUE_KEYS, RecordingLogger, collect_rollout

needs_cuda = pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA device")

DEVICE_PAIRS = [
    pytest.param("cpu", "cpu", id="cpu-cpu"),
    pytest.param("cuda", "cpu", id="cuda-cpu", marks=needs_cuda),
    pytest.param("cpu", "cuda", id="cpu-cuda", marks=needs_cuda),
    pytest.param("cuda", "cuda", id="cuda-cuda", marks=needs_cuda),
]

ENVS = {
    "box": lambda: BoxTargetEnv(dim=3, ep_length=40),
    "discrete": lambda: IdentityEnv(dim=4, ep_length=20),
}

# SB3 warns that an MlpPolicy is usually faster on the CPU; on CUDA that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to run TRPOCritic on the GPU")


def on_device(tensor: th.Tensor, device: th.device) -> bool:
    """``tensor`` lives on ``device`` (``th.device("cuda")`` stands for the current CUDA device)."""
    device = th.device(device)
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def optimizer_state_tensors(optimizer: th.optim.Optimizer) -> list[th.Tensor]:
    return [value for state in optimizer.state.values() for value in state.values() if isinstance(value, th.Tensor)]


def assert_model_on(model: TRPOCritic, device: str) -> None:
    """Every parameter, buffer and critic optimizer state of ``model`` lives on ``device``."""
    assert model.device.type == device
    assert model.policy.device.type == device
    for name, tensor in model.policy.state_dict().items():
        assert on_device(tensor, model.device), f"{name} is on {tensor.device}, not {model.device}"
    policy_params = {id(p) for p in model.policy.parameters()}
    # the split refers to the policy's own (loaded) tensors, not to stale copies
    assert {id(p) for p in model._actor_params} | {id(p) for p in model._critic_params} == policy_params
    optimized = [p for group in model.policy.optimizer.param_groups for p in group["params"]]
    assert [id(p) for p in optimized] == [id(p) for p in model._critic_params]
    state = optimizer_state_tensors(model.policy.optimizer)
    for tensor in state:
        assert on_device(tensor, model.device), f"critic optimizer state on {tensor.device}, not {model.device}"


def make_model(env_name: str, device: str, **kwargs) -> TRPOCritic:
    params: dict[str, Any] = dict(n_steps=128, batch_size=64, n_critic_updates=2, cg_max_steps=8, seed=0, device=device)
    params.update(kwargs)
    return TRPOCritic("MlpPolicy", make_vec_env(ENVS[env_name], n_envs=2, seed=0), **params)


@pytest.mark.parametrize(("save_device", "load_device"), DEVICE_PAIRS)
def test_save_on_one_device_load_and_learn_on_another(save_device, load_device, tmp_path):
    model = make_model("box", save_device).learn(512)
    assert_model_on(model, save_device)
    assert optimizer_state_tensors(model.policy.optimizer), "the critic optimizer never stepped"
    obs = np.stack([model.observation_space.sample() for _ in range(32)])
    actions, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model")

    loaded = TRPOCritic.load(tmp_path / "model", env=make_vec_env(ENVS["box"], n_envs=2, seed=1), device=load_device)
    assert_model_on(loaded, load_device)
    # the parameters and the critic optimizer's state are the saved ones, moved to the load device
    saved, restored = model.policy.state_dict(), loaded.policy.state_dict()
    assert saved.keys() == restored.keys()
    for name in saved:
        assert th.equal(saved[name].cpu(), restored[name].cpu()), name
    saved_state = model.policy.optimizer.state_dict()["state"]
    restored_state = loaded.policy.optimizer.state_dict()["state"]
    assert saved_state.keys() == restored_state.keys() and saved_state
    for index, state in saved_state.items():
        for key, value in state.items():
            assert th.equal(th.as_tensor(value).cpu(), th.as_tensor(restored_state[index][key]).cpu()), (index, key)
    # the same parameters predict the same actions (up to the devices' float rounding)
    loaded_actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(loaded_actions, actions, rtol=1e-5, atol=1e-6)

    # and it learns on the load device
    before = [p.detach().clone() for p in loaded._critic_params]
    logger = RecordingLogger()
    loaded.set_logger(logger)
    loaded.learn(512, reset_num_timesteps=False)
    assert loaded.num_timesteps == 512 + 512
    assert logger.history["train/n_updates"] == [3, 4]
    assert_model_on(loaded, load_device)
    assert not all(th.equal(b, p) for b, p in zip(before, loaded._critic_params, strict=True))
    assert all(bool(th.isfinite(p).all()) for p in loaded.policy.parameters())


BUFFER_ARRAYS = ("observations", "actions", "rewards", "returns", "episode_starts", "values", "log_probs", "advantages")


def copy_rollout(source: TRPOCritic, target: TRPOCritic) -> None:
    """Give ``target`` a rollout buffer with the same contents as ``source``'s (not yet flattened)."""
    src, dst = source.rollout_buffer, target.rollout_buffer
    assert not src.generator_ready and src.full
    for name in BUFFER_ARRAYS:
        assert getattr(dst, name).shape == getattr(src, name).shape, name
        setattr(dst, name, getattr(src, name).copy())
    dst.pos, dst.full, dst.generator_ready = src.pos, src.full, False


def train_once(model: TRPOCritic) -> dict[str, list]:
    logger = RecordingLogger()
    model.set_logger(logger)
    # the same sample order on both: train() draws it from numpy, the critic's minibatches from torch
    np.random.seed(1)
    th.manual_seed(1)
    model.train()
    return logger.history


#: logged by train() and compared between the two devices (the timings are not)
COMPARED_KEYS = TRAIN_VALUE_KEYS
EXACT_KEYS = {
    "train/is_line_search_success",
    "train/line_search_steps",
    "train/step_outcome",
    "train/n_rejected_steps",
    "train/cg_iterations",
    "train/critic_updates",
    "train/n_updates",
}


def compare_one_train_step(env_name: str, device_a: str, device_b: str) -> None:
    """One ``train()`` on ``device_a`` and on ``device_b``, from the same parameters and the same rollout."""
    # One critic minibatch of the whole rollout: its mean does not depend on the order of the samples,
    # which the two devices' random generators draw differently.
    # cg_max_steps=3 ends the conjugate gradient on its iteration count, well before its residual
    # test, which float rounding could otherwise end one iteration apart on the two devices.
    kwargs: dict[str, Any] = dict(target_kl=0.01, batch_size=256, cg_max_steps=3)
    model_a, model_b = make_model(env_name, device_a, **kwargs), make_model(env_name, device_b, **kwargs)
    assert model_a.rollout_buffer.buffer_size * model_a.n_envs == 256
    model_b.policy.load_state_dict(model_a.policy.state_dict())
    collect_rollout(model_a)
    copy_rollout(model_a, model_b)
    actor_before = [p.detach().cpu().clone() for p in model_a._actor_params]
    critic_before = [p.detach().cpu().clone() for p in model_a._critic_params]

    history_a, history_b = train_once(model_a), train_once(model_b)

    assert_model_on(model_a, device_a)
    assert_model_on(model_b, device_b)
    assert history_a.keys() >= COMPARED_KEYS and history_b.keys() >= COMPARED_KEYS
    if env_name == "box":
        assert history_a["train/std"] == pytest.approx(history_b["train/std"], rel=1e-5)
    assert history_a["train/step_outcome"] == ["accepted"], "the comparison needs a step that moves the actor"
    assert history_a["train/cg_iterations"] == [3] and history_a["train/cg_residual"][0] > 1e-9
    for key in sorted(COMPARED_KEYS):
        (value_a,), (value_b,) = history_a[key], history_b[key]
        if key in EXACT_KEYS:
            assert value_a == value_b, (key, value_a, value_b)
        else:
            assert value_b == pytest.approx(value_a, rel=1e-3, abs=1e-6), (key, value_a, value_b)

    # the actor moved, by the same step on both devices
    actor_a = [p.detach().cpu() for p in model_a._actor_params]
    actor_b = [p.detach().cpu() for p in model_b._actor_params]
    step_a = th.cat([(new - old).flatten() for new, old in zip(actor_a, actor_before, strict=True)])
    step_b = th.cat([(new - old).flatten() for new, old in zip(actor_b, actor_before, strict=True)])
    assert float(step_a.norm()) > 0
    assert float((step_a - step_b).norm()) <= 1e-3 * float(step_a.norm())
    for a, b in zip(actor_a, actor_b, strict=True):
        th.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
    # and the critic's regression too
    critic_a = [p.detach().cpu() for p in model_a._critic_params]
    critic_b = [p.detach().cpu() for p in model_b._critic_params]
    assert not all(th.equal(a, old) for a, old in zip(critic_a, critic_before, strict=True))
    for a, b in zip(critic_a, critic_b, strict=True):
        th.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("env_name", list(ENVS))
@pytest.mark.parametrize(("device_a", "device_b"), DEVICE_PAIRS)
def test_one_train_step_is_the_same_on_both_devices(env_name, device_a, device_b):
    compare_one_train_step(env_name, device_a, device_b)


def test_auto_device_is_cuda_when_available():
    model = TRPOCritic("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, device="auto")
    expected = "cuda" if th.cuda.is_available() else "cpu"
    assert model.device.type == expected
    assert all(p.device.type == expected for p in model.policy.parameters())
    assert all(t.device.type == expected for t in model.policy.state_dict().values())


def test_auto_device_resolves_through_sb3(monkeypatch):
    """``device="auto"`` reaches SB3's selection: with CUDA reported available, the model's device is cuda."""
    monkeypatch.setattr(th.cuda, "is_available", lambda: True)
    model = TRPOCritic("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, device="auto", _init_setup_model=False)
    assert model.device == th.device("cuda")
    monkeypatch.setattr(th.cuda, "is_available", lambda: False)
    model = TRPOCritic("MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=64, device="auto", _init_setup_model=False)
    assert model.device == th.device("cpu")
