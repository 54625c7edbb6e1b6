"""The throughput benchmark's pieces, and TRPOCritic's rollout settings."""

import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks import throughput
from sb3_trpo_critic.benchmarks.throughput import (
    ENV_STACK_LABEL,
    Measurement,
    Variant,
    env_stack_variant,
    measure,
    on_engines,
    parse_variant,
    schedule,
    summarize,
)
from sb3_trpo_critic.benchmarks.timing import Phases, random_action_seconds, time_learn


def test_parse_variant():
    assert parse_variant(["trpo"]) == Variant("trpo", "trpo")
    variant = parse_variant(["trpo_critic", "n_envs:8", "n_steps:256", "use_sde:None"])
    assert variant.algo == "trpo_critic" and variant.label == "trpo_critic n_envs:8 n_steps:256 use_sde:None"
    assert variant.overrides == (("n_envs", 8), ("n_steps", 256), ("use_sde", None))
    # rl-zoo3's KEY:VALUE: a value that is not a Python literal is the string, evaluated by rl-zoo3's preprocessing
    assert parse_variant(["trpo_critic", "policy_kwargs:dict(log_std_init=-1)"]).overrides == (
        ("policy_kwargs", "dict(log_std_init=-1)"),
    )
    for bad, message in [
        ([], "expected ALGO"),
        (["trpo_critic[n_envs=8]"], "--variant ALGO KEY:VALUE"),  # the bracket form is gone
        (["trpo_critic[n_envs=8"], "--variant ALGO KEY:VALUE"),
        (["trpo_critic", "n_envs=8"], "--variant trpo_critic takes KEY:VALUE, got 'n_envs=8'"),
        (["trpo_critic", "n_envs"], "takes KEY:VALUE"),
        (["trpo_critic", ":8"], "takes KEY:VALUE"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_variant(bad)


def test_command_line_takes_variants_after_the_algorithms(fake_pool, capsys):
    argv = ["--envs", "E", "--algos", "trpo_critic", "ppo", "--variant", "trpo_critic", "n_envs:8", "--rounds", "1"]
    assert throughput.main(argv) == 0
    assert [job[1] for job in fake_pool] == [
        Variant("trpo_critic", "trpo_critic"),
        Variant("ppo", "ppo"),
        Variant("trpo_critic n_envs:8", "trpo_critic", (("n_envs", 8),)),
        Variant(ENV_STACK_LABEL, "trpo_critic", env_stack=True),  # the env stack of the first algorithm's entry
    ]
    assert "| trpo_critic n_envs:8 | 1 |" in capsys.readouterr().out
    for argv in (["--algos", "trpo_critic[n_envs=8]"], ["--variant", "trpo_critic", "n_envs=8"]):
        with pytest.raises(SystemExit) as exit_info:
            throughput.main(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--variant ALGO KEY:VALUE" in err and "--variant trpo_critic takes KEY:VALUE, got 'n_envs=8'" in err


def test_schedule_interleaves_and_rotates():
    a, b, c = Variant("a", "a"), Variant("b", "b"), Variant("c", "c")
    jobs = schedule(["E1", "E2"], [a, b, c], rounds=3)
    assert len(jobs) == 18
    firsts = [variant.label for env_id, variant, round_ in jobs if env_id == "E1"]
    assert firsts == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_summary_medians_and_speedups():
    variants = [Variant("ours", "ours"), Variant("theirs", "theirs")]
    measurements = [
        Measurement("E", "ours", r, 1000, seconds, 0.5 * seconds, 0.25 * seconds) for r, seconds in enumerate((1.0, 2.0, 1.0))
    ] + [Measurement("E", "theirs", r, 1000, 2.0, 1.0, 0.5) for r in range(3)]
    table = summarize(measurements, variants)
    assert "| ours | 3 | 1000 | 1.00 | 2000 | 0.250 | 0.250 |" in table
    assert "| theirs | 3 | 500 | 2.00 | 1000 | 0.500 | 0.500 |" in table


def test_measure_times_the_phases_of_a_real_training():
    m = measure("CartPole-v1", Variant("trpo_critic", "trpo_critic"), 0, timesteps=2048, seed=0, threads=1)
    assert m.timesteps == 2048
    assert 0 < m.rollout_seconds < m.seconds and 0 < m.train_seconds < m.seconds
    assert m.rollout_seconds + m.train_seconds <= m.seconds


def test_measure_builds_the_variant_with_the_runners_builder(monkeypatch):
    from sb3_trpo_critic.benchmarks.results import RunSpec

    built = []
    build_training = throughput.build_training

    def spy(spec, **model_arguments):
        built.append((spec, model_arguments))
        return build_training(spec, **model_arguments)

    monkeypatch.setattr(throughput, "build_training", spy)
    variant = parse_variant(["trpo_critic", "n_envs:4", "n_steps:128"])
    m = measure("CartPole-v1", variant, 1, timesteps=1024, seed=5, threads=1)
    spec = RunSpec("trpo_critic", "CartPole-v1", 5, timesteps=1024, threads=1, hyperparams=(("n_envs", 4), ("n_steps", 128)))
    assert built == [(spec, {"envpool_threads": 1, "device": "cpu"})]  # EnvPool's threads: used on envpool only
    assert (m.label, m.round, m.timesteps) == ("trpo_critic n_envs:4 n_steps:128", 1, 1024)


def test_distribution_validation_is_off_during_the_rollout_only():
    seen = []

    class Probe(BaseCallback):
        def _on_step(self):
            seen.append(th.distributions.Distribution._validate_args)
            return True

    model = TRPOCritic("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, seed=0)
    model.learn(128, callback=Probe())
    assert seen and set(seen) == {False}
    assert th.distributions.Distribution._validate_args is True  # restored for train() and afterwards


# --- the warm-up, the env stack, the peers (issue 24) -------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "index.md"


class FakeModel:
    """SB3's learn loop in miniature: each rollout of n_steps * n_envs steps, then train(); the first of each is slow."""

    n_steps, n_envs = 4, 2

    def __init__(self):
        self.num_timesteps = 0
        self.calls = 0

    def learn(self, total_timesteps, reset_num_timesteps=True):
        end = total_timesteps + (0 if reset_num_timesteps else self.num_timesteps)
        while self.num_timesteps < end:
            self.collect_rollouts()
            self.train()

    def collect_rollouts(self):
        time.sleep(0.2 if self.calls == 0 else 0.01)  # the first rollout: JIT compilation
        self.num_timesteps += self.n_steps * self.n_envs

    def train(self):
        time.sleep(0.2 if self.calls == 0 else 0.02)
        self.calls += 1


def test_time_learn_times_after_one_rollout_and_update_of_warm_up():
    phases = time_learn(FakeModel(), timesteps=24)
    assert (phases.warmup_timesteps, phases.timesteps) == (8, 24)
    assert 0.03 <= phases.rollout_seconds < 0.15 and 0.06 <= phases.train_seconds < 0.2  # 3 rollouts, not the first
    assert phases.rollout_seconds + phases.train_seconds <= phases.seconds < 0.35


def test_measure_warms_up_then_times_the_requested_steps():
    m = measure("CartPole-v1", Variant("ppo", "ppo"), 0, timesteps=1024, seed=0, threads=1)
    # rl-zoo3's CartPole-v1 ppo entry: 8 envs x 32 steps per rollout
    assert (m.warmup_timesteps, m.timesteps) == (256, 1024)


def test_random_action_seconds_steps_whole_vectors():
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("CartPole-v1", n_envs=3, seed=0)
    steps = []
    step = venv.step

    def spy(actions):
        steps.append(actions.copy())
        return step(actions)

    venv.step = spy  # type: ignore[method-assign]
    taken, seconds = random_action_seconds(venv, 10, seed=0)
    assert taken == 12 and len(steps) == 4 and seconds > 0
    assert len({tuple(actions) for actions in steps}) > 1  # fresh random actions, not one repeated


def test_env_stack_is_the_first_zoo_algorithms_entry():
    algos = [Variant("sbx_ppo", "sbx_ppo"), Variant("trpo", "trpo"), Variant("ppo", "ppo")]
    assert env_stack_variant(algos) == Variant(ENV_STACK_LABEL, "trpo", env_stack=True)
    assert env_stack_variant([Variant("tianshou_trpo", "tianshou_trpo")]).algo == "trpo_critic"


def test_env_stack_steps_the_training_env_of_our_entry(monkeypatch):
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from sb3_trpo_critic.zoo import load_zoo_hyperparameters

    stepped = []
    random_steps = throughput.random_action_seconds

    def spy(venv, timesteps, seed=0):
        stepped.append((venv, timesteps))
        return random_steps(venv, timesteps, seed)

    monkeypatch.setattr(throughput, "random_action_seconds", spy)
    m = measure("Hopper-v5", env_stack_variant([Variant("trpo_critic", "trpo_critic")]), 2, timesteps=1000, seed=0, threads=1)
    (warmup_env, warmup), (env, timesteps) = stepped
    entry = load_zoo_hyperparameters("trpo_critic", "Hopper-v5")
    assert env is warmup_env and (warmup, timesteps) == (entry.model_kwargs["n_steps"] * entry.n_envs, 1000)
    assert isinstance(env, VecNormalize) and isinstance(env.venv, DummyVecEnv) and env.num_envs == entry.n_envs == 8
    assert (m.label, m.round, m.timesteps, m.warmup_timesteps) == (ENV_STACK_LABEL, 2, 1000, 2048)
    assert m.rollout_seconds == m.seconds > 0 and m.train_seconds == 0


@pytest.mark.parametrize(
    ("algo", "warmup"),
    [
        ("trpo_critic", 512 * 2),  # our CartPole-v1 entry: n_steps 512, 2 envs
        ("a2c", 5 * 8),  # rl-zoo3's: no n_steps (A2C's default, 5), 8 envs
    ],
)
def test_env_stack_builds_no_model(monkeypatch, algo, warmup):
    """The env stack is built without the model; its warm-up is still one rollout, n_steps (the entry's, or else the
    constructor's default) times n_envs."""
    import functools

    from rl_zoo3.utils import ALGOS

    from sb3_trpo_critic.zoo import register

    def no_model(*args, **kwargs):
        raise AssertionError("the env stack built a model")

    register()
    init = ALGOS[algo].__init__
    monkeypatch.setattr(ALGOS[algo], "__init__", functools.wraps(init)(no_model))  # its signature is kept
    monkeypatch.setattr(throughput, "build_training", no_model)
    stepped = []
    random_steps = throughput.random_action_seconds

    def spy(venv, timesteps, seed=0):
        stepped.append(timesteps)
        return random_steps(venv, timesteps, seed)

    monkeypatch.setattr(throughput, "random_action_seconds", spy)
    m = measure("CartPole-v1", env_stack_variant([Variant(algo, algo)]), 0, timesteps=64, seed=0, threads=1)
    assert stepped == [warmup, 64] and (m.warmup_timesteps, m.timesteps) == (warmup, 64)
    with pytest.raises(AssertionError, match="built a model"):  # the patches are in place
        measure("CartPole-v1", Variant(algo, algo), 0, timesteps=64, seed=0, threads=1)


def test_summary_env_stack_row_and_fractions():
    variants = [Variant("ours", "ours"), Variant("theirs", "theirs"), Variant(ENV_STACK_LABEL, "ours", env_stack=True)]
    measurements = [
        Measurement("E", "ours", 0, 1000, 1.0, 0.5, 0.25),
        Measurement("E", "theirs", 0, 1000, 2.0, 1.0, 0.5),
        Measurement("E", ENV_STACK_LABEL, 0, 1000, 0.25, 0.25, 0.0),
    ]
    table = summarize(measurements, variants)
    assert "| ours is x faster | fraction of env stack | rollout env-steps/s |" in table
    assert "| ours | 1 | 1000 | 1.00 | 0.25 | 2000 | 0.250 | 0.250 |" in table
    assert "| theirs | 1 | 500 | 2.00 | 0.12 | 1000 | 0.500 | 0.500 |" in table
    assert f"| {ENV_STACK_LABEL} | 1 | 4000 | 0.25 | 1.00 | 4000 | - | - |" in table


class FakePool:
    """multiprocessing's Pool, in this process: records the jobs, measures nothing."""

    jobs: ClassVar[list] = []

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def imap(self, function, arguments):
        for job in arguments:
            FakePool.jobs.append(job)
            env_id, variant, round_ = job[:3]
            yield Measurement(env_id, variant.label, round_, 1000, 1.0, 0.5, 0.0 if variant.env_stack else 0.25, 8)


@pytest.fixture
def fake_pool(monkeypatch):
    class Context:
        Pool = FakePool

    FakePool.jobs = []
    monkeypatch.setattr(throughput.multiprocessing, "get_context", lambda method: Context())
    return FakePool.jobs


def test_rounds_rotate_through_the_peers_and_the_env_stack(fake_pool, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(throughput, "check_peer", lambda algo: None)  # as if the extra were installed
    out = tmp_path / "measurements.json"
    argv = ["--envs", "E", "--algos", "trpo_critic", "tianshou_trpo", "sbx_ppo", "--rounds", "2", "--out", str(out)]
    assert throughput.main(argv) == 0
    labels = [(job[2], job[1].label) for job in fake_pool]
    assert labels == [
        (0, "trpo_critic"),
        (0, "tianshou_trpo"),
        (0, "sbx_ppo"),
        (0, ENV_STACK_LABEL),
        (1, "tianshou_trpo"),
        (1, "sbx_ppo"),
        (1, ENV_STACK_LABEL),
        (1, "trpo_critic"),
    ]
    assert fake_pool[3][1] == Variant(ENV_STACK_LABEL, "trpo_critic", env_stack=True)
    table = capsys.readouterr().out
    assert "| tianshou_trpo | 2 |" in table and "| sbx_ppo | 2 |" in table and f"| {ENV_STACK_LABEL} | 2 |" in table
    records = json.loads(out.read_text())
    assert [record["label"] for record in records] == [label for _, label in labels]
    assert records[3] == {
        "env_id": "E",
        "label": ENV_STACK_LABEL,
        "round": 0,
        "timesteps": 1000,
        "seconds": 1.0,
        "rollout_seconds": 0.5,
        "train_seconds": 0.0,
        "warmup_timesteps": 8,
    }


def test_the_committed_measurement_files_still_read():
    for path in sorted((DOCS.parent.parent.parent / "benchmarks" / "results" / "throughput").glob("*.json")):
        measurements = [Measurement(**record) for record in json.loads(path.read_text())]
        assert measurements and all(m.fps > 0 for m in measurements), path
        # files written before the warm-up have none; the others record one rollout's worth for every training
        assert len({m.warmup_timesteps == 0 for m in measurements}) == 1, path


def test_without_the_env_stack(fake_pool, capsys):
    assert throughput.main(["--envs", "E", "--algos", "trpo_critic", "ppo", "--rounds", "1", "--no-env-stack"]) == 0
    assert [job[1].label for job in fake_pool] == ["trpo_critic", "ppo"]
    assert "fraction of env stack" not in capsys.readouterr().out


@pytest.mark.parametrize(("algo", "hidden"), [("tianshou_trpo", "tianshou"), ("sbx_ppo", "jax")])
def test_a_peer_without_the_peers_extra_is_one_line_and_exit_2(fake_pool, monkeypatch, capsys, algo, hidden):
    from sb3_trpo_critic.benchmarks.peers import PEER_MODULES

    monkeypatch.setitem(sys.modules, hidden, None)  # as if not installed
    # the message names the first of the peer's modules that is missing: the hidden one, or one not installed here
    missing = next(name for name in PEER_MODULES[algo] if name == hidden or importlib.util.find_spec(name) is None)
    with pytest.raises(SystemExit) as exit_info:
        throughput.main(["--envs", "Hopper-v5", "--algos", "trpo_critic", algo])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(
        f"error: --algos {algo} needs the 'peers' extra ({missing} is not installed): pip install \"sb3-trpo-critic[peers]\""
    )
    assert fake_pool == []  # nothing was started
    assert throughput.main(["--envs", "E", "--algos", "trpo_critic", "ppo", "--rounds", "1"]) == 0  # no peer: as before


def test_tianshou_trpo_takes_no_changes(fake_pool, monkeypatch, capsys):
    monkeypatch.setattr(throughput, "check_peer", lambda algo: None)
    with pytest.raises(SystemExit) as exit_info:
        throughput.main(["--envs", "E", "--variant", "tianshou_trpo", "max_kl:0.02"])
    assert exit_info.value.code == 2 and "--variant tianshou_trpo takes no KEY:VALUE" in capsys.readouterr().err
    assert fake_pool == []


def documented(heading: str, column: int = 1) -> dict[str, str]:
    """The settings table after the paragraph starting with ``heading`` in docs/benchmarks/index.md: setting -> value."""
    text = DOCS.read_text()
    rows = text[text.index(heading) :].split("\n\n| setting |", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return {row[0]: row[column] for row in cells}


@pytest.mark.slow  # importing Tianshou: about 10 s
def test_tianshou_trpo_is_built_with_the_documented_settings():
    pytest.importorskip("tianshou")
    from tianshou.data import VectorReplayBuffer
    from tianshou.env import DummyVectorEnv, VectorEnvNormObs
    from torch import nn

    from sb3_trpo_critic.benchmarks.peers import tianshou_trpo_training

    training = tianshou_trpo_training("Hopper-v5", seed=0, threads=1)
    algorithm, policy, collector = training.algorithm, training.algorithm.policy, training.collector
    params = training.trainer_params(20480)
    actor_layers = list(policy.actor.preprocess.model.model)
    critic_layers = list(algorithm.critic.preprocess.model.model)
    (mu,) = policy.actor.mu.model
    (adam,) = [algorithm.optim._optim]
    (schedule,) = algorithm.lr_schedulers
    values = {
        "training envs": len(training.envs),
        "env steps per collect": params.collection_step_num_env_steps,
        "batch size": params.batch_size,
        "repetitions per update": params.update_step_num_repetitions,
        "log std (state-independent)": float(policy.actor.sigma_param.detach().unique()),
        "return scaling (rew_norm)": algorithm.return_scaling,
        "advantage normalization": algorithm.advantage_normalization,
        "max_kl": algorithm.max_kl,
        "backtrack_coeff": algorithm.backtrack_coeff,
        "max_backtracks": algorithm.max_backtracks,
        "gamma": algorithm.gamma,
        "gae_lambda": algorithm.gae_lambda,
        "critic steps per update": algorithm.optim_critic_iters,
        "learning rate": adam.param_groups[0]["initial_lr"],
        "buffer": collector.buffer.maxsize,
        "exploration noise": collector.exploration_noise,
    }
    docs = documented("**`tianshou_trpo`**")
    for setting, value in values.items():
        assert docs[setting].split()[0].strip(",") == str(value), setting
    # and the rest of the table, read from the objects
    assert (values["training envs"], values["env steps per collect"], values["batch size"]) == (16, 1024, None)
    assert (algorithm.max_kl, algorithm.backtrack_coeff, algorithm.max_backtracks, algorithm.optim_critic_iters) == (
        0.01,
        0.8,
        10,
        20,
    )
    assert isinstance(training.envs, VectorEnvNormObs) and training.envs.update_obs_rms
    assert isinstance(training.envs.venv, DummyVectorEnv) and docs["vector env"] == "`DummyVectorEnv`"
    for layers in (actor_layers, critic_layers):
        assert [type(layer) for layer in layers] == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh]
        assert [layer.out_features for layer in layers[::2]] == [64, 64]
    assert docs["hidden sizes"].startswith("64, 64") and docs["activation"] == "Tanh"
    assert mu.weight.abs().max() < 0.05 and not mu.bias.any()  # orthogonal x 0.01, zero bias
    assert schedule.lr_lambdas[0].__self__.max_update_num == 3000 and "over 3000 updates" in docs["learning rate"]
    assert (policy.action_scaling, policy.action_bound_method) == (True, "clip")
    assert isinstance(collector.buffer, VectorReplayBuffer) and collector.buffer.buffer_num == 16
    training.envs.close()


@pytest.mark.slow
def test_tianshou_trpo_measures_a_tiny_training():
    pytest.importorskip("tianshou")
    m = measure("Hopper-v5", Variant("tianshou_trpo", "tianshou_trpo"), 0, timesteps=1024, seed=0, threads=1)
    assert (m.timesteps, m.warmup_timesteps) == (1024, 1024)
    assert 0 < m.rollout_seconds < m.seconds and 0 < m.train_seconds < m.seconds
    assert m.rollout_seconds + m.train_seconds <= m.seconds


def test_sbx_ppo_arguments_translate_what_sbx_does_not_take():
    pytest.importorskip("sbx")
    import flax.linen
    from torch import nn

    from sb3_trpo_critic.benchmarks.peers import sbx_ppo_arguments

    arguments = sbx_ppo_arguments({"n_steps": 512, "policy_kwargs": {"activation_fn": nn.ReLU, "ortho_init": False}})
    assert arguments == {"n_steps": 512, "policy_kwargs": {"activation_fn": flax.linen.relu, "ortho_init": False}}
    tanh = sbx_ppo_arguments({"policy_kwargs": {"activation_fn": nn.Tanh}})["policy_kwargs"]["activation_fn"]
    assert tanh is flax.linen.tanh
    cases: list[tuple[dict[str, Any], str]] = [
        ({"target_kl": 0.01}, "target_kl"),
        ({"policy_kwargs": {"activation_fn": nn.Softplus}}, "no flax activation"),
        ({"policy_kwargs": {"full_std": True}}, "does not take policy_kwargs.full_std"),
        ({"create_eval_env": True}, "does not take create_eval_env"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            sbx_ppo_arguments(bad)


@pytest.fixture
def jax_environment(monkeypatch):
    """JAX's environment variables unset, and restored afterwards (jax_threads sets them in os.environ)."""
    for name in ("XLA_FLAGS", "NPROC", "JAX_PLATFORMS"):
        monkeypatch.setenv(name, "")  # recorded, so that the teardown restores the variable as it was
        monkeypatch.delenv(name)


def test_jax_threads_are_set_before_jax_is_imported(jax_environment, monkeypatch):
    from sb3_trpo_critic.benchmarks.peers import jax_threads

    monkeypatch.delitem(sys.modules, "jax", raising=False)
    jax_threads(1)
    assert os.environ["NPROC"] == "1" and os.environ["JAX_PLATFORMS"] == "cpu"
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    monkeypatch.delenv("XLA_FLAGS")
    jax_threads(2)
    assert os.environ["NPROC"] == "2" and "XLA_FLAGS" not in os.environ


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:jax is imported already")  # the second model, in this process
def test_sbx_ppo_is_rl_zoo3s_ppo_entry_and_measures_a_tiny_training(jax_environment):
    pytest.importorskip("sbx")
    import flax.linen
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from sb3_trpo_critic.benchmarks.peers import sbx_ppo_model
    from sb3_trpo_critic.zoo import load_zoo_hyperparameters

    model = sbx_ppo_model("Hopper-v5", seed=0, threads=1)
    entry = load_zoo_hyperparameters("ppo", "Hopper-v5")
    policy, env = model.policy, model.get_env()
    values = {
        "n_envs": env.num_envs,
        "normalize": isinstance(env, VecNormalize),
        "n_steps": model.n_steps,
        "batch_size": model.batch_size,
        "n_epochs": model.n_epochs,
        "gamma": model.gamma,
        "gae_lambda": model.gae_lambda,
        "learning_rate": model.lr_schedule(1.0),
        "clip_range": model.clip_range_schedule(1.0),
        "ent_coef": model.ent_coef,
        "vf_coef": model.vf_coef,
        "max_grad_norm": model.max_grad_norm,
        "log_std_init": policy.log_std_init,
        "ortho_init": policy.ortho_init,
        "activation_fn": policy.activation_fn.__name__,
        "net_arch": ", ".join(map(str, policy.net_arch_pi)),
    }
    docs = documented("**`sbx_ppo`**", column=2)  # the Hopper-v5 column
    assert docs["rl-zoo3 entry"] == entry.entry == "Hopper-v4"
    for setting, value in values.items():
        assert docs[setting].split(" (")[0] == str(value), setting
    kwargs = entry.model_kwargs
    for key in ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm"):
        assert getattr(model, key) == kwargs[key], key
    assert values["learning_rate"] == kwargs["learning_rate"](1.0) and values["clip_range"] == kwargs["clip_range"](1.0)
    assert policy.activation_fn is flax.linen.relu and policy.net_arch_pi == policy.net_arch_vf == [256, 256]
    assert isinstance(env.venv, DummyVecEnv) and env.gamma == kwargs["gamma"]
    env.close()

    m = measure("Hopper-v5", Variant("sbx_ppo", "sbx_ppo"), 0, timesteps=1024, seed=0, threads=1)
    assert (m.timesteps, m.warmup_timesteps) == (1024, 512)
    assert 0 < m.rollout_seconds < m.seconds and 0 < m.train_seconds < m.seconds


def test_each_engine_measures_the_zoo_algorithms_the_peers_and_the_env_stack(fake_pool, monkeypatch, capsys):
    monkeypatch.setattr(throughput, "check_peer", lambda algo: None)  # as if the extra were installed
    argv = ["--envs", "E", "--algos", "trpo_critic", "tianshou_trpo", "sbx_ppo", "--rounds", "1"]
    assert throughput.main([*argv, "--vec-env", "dummy", "envpool"]) == 0
    assert [(job[1].label, job[1].vec_env) for job in fake_pool] == [
        ("trpo_critic", "dummy"),
        ("trpo_critic on envpool", "envpool"),
        ("tianshou_trpo", "dummy"),
        ("tianshou_trpo on envpool", "envpool"),  # Tianshou's example on EnvPool, as it runs with EnvPool installed
        ("sbx_ppo", "dummy"),
        ("sbx_ppo on envpool", "envpool"),  # SBX's PPO on ppo's env stack on EnvPool
        (ENV_STACK_LABEL, "dummy"),
        (f"{ENV_STACK_LABEL} on envpool", "envpool"),
    ]
    table = capsys.readouterr().out
    assert "| trpo_critic on envpool | 1 |" in table and "| tianshou_trpo on envpool | 1 |" in table
    assert "| sbx_ppo on envpool | 1 |" in table
    # --vec-env dummy alone: as without --vec-env, every peer on gymnasium's envs only
    for engines in (["--vec-env", "dummy"], []):
        fake_pool.clear()
        assert throughput.main([*argv, *engines]) == 0
        assert [(job[1].label, job[1].vec_env) for job in fake_pool] == [
            ("trpo_critic", "dummy"),
            ("tianshou_trpo", "dummy"),
            ("sbx_ppo", "dummy"),
            (ENV_STACK_LABEL, "dummy"),
        ]
        assert "on envpool" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        throughput.main(["--vec-env", "subproc"])
    assert exit_info.value.code == 2


def test_summary_fractions_are_of_the_env_stack_on_the_same_engine():
    stack = Variant(ENV_STACK_LABEL, "ours", env_stack=True)
    peer = Variant("tianshou_trpo", "tianshou_trpo")
    variants = [Variant("ours", "ours"), Variant("ours", "ours").on("envpool"), peer, peer.on("envpool")]
    variants += [stack, stack.on("envpool")]
    measurements = [
        Measurement("E", "ours", 0, 1000, 1.0, 0.5, 0.25),
        Measurement("E", "ours on envpool", 0, 1000, 0.5, 0.25, 0.25),
        Measurement("E", "tianshou_trpo", 0, 1000, 0.5, 0.25, 0.125),
        Measurement("E", "tianshou_trpo on envpool", 0, 1000, 0.2, 0.1, 0.05),
        Measurement("E", ENV_STACK_LABEL, 0, 1000, 0.5, 0.5, 0.0),
        Measurement("E", f"{ENV_STACK_LABEL} on envpool", 0, 1000, 0.25, 0.25, 0.0),
    ]
    table = summarize(measurements, variants)
    assert "| ours | 1 | 1000 | 1.00 | 0.50 |" in table
    assert "| ours on envpool | 1 | 2000 | 0.50 | 0.50 |" in table
    assert "| tianshou_trpo | 1 | 2000 | 0.50 | 1.00 |" in table  # of the env stack on gymnasium (2000/s)
    assert "| tianshou_trpo on envpool | 1 | 5000 | 0.20 | 1.25 |" in table  # of the env stack on EnvPool (4000/s)
    assert f"| {ENV_STACK_LABEL} on envpool | 1 | 4000 | 0.25 | 1.00 |" in table


def test_measure_builds_the_engine_of_the_variant(monkeypatch):
    pytest.importorskip("envpool")
    from sb3_trpo_critic.envpool import EnvPoolVecEnv

    built = []
    build_training = throughput.build_training

    def spy(spec, **model_arguments):
        training = build_training(spec, **model_arguments)
        built.append((spec.vec_env, training[1]))
        return training

    monkeypatch.setattr(throughput, "build_training", spy)
    variant = parse_variant(["trpo_critic", "n_envs:2", "n_steps:64"]).on("envpool")
    m = measure("Hopper-v5", variant, 0, timesteps=128, seed=0, threads=1)
    ((vec_env, env),) = built
    assert vec_env == "envpool" and isinstance(env.unwrapped, EnvPoolVecEnv)
    assert (m.label, m.timesteps) == ("trpo_critic n_envs:2 n_steps:64 on envpool", 128)


def test_a_peer_is_measured_only_on_its_engines(monkeypatch):
    from sb3_trpo_critic.benchmarks.peers import PEER_VEC_ENVS, measure_peer

    assert PEER_VEC_ENVS == {"tianshou_trpo": ("dummy", "envpool"), "sbx_ppo": ("dummy", "envpool")}
    monkeypatch.setitem(throughput.PEER_VEC_ENVS, "sbx_ppo", ("dummy",))  # a peer that could not run on EnvPool
    variants = [Variant("trpo_critic", "trpo_critic"), Variant("sbx_ppo", "sbx_ppo")]
    labels = [v.label for v in on_engines(variants, ["dummy", "envpool"])]
    assert labels == ["trpo_critic", "trpo_critic on envpool", "sbx_ppo"]
    assert [v.label for v in on_engines(variants, ["envpool"])] == ["trpo_critic on envpool", "sbx_ppo"]
    with pytest.raises(ValueError, match="sbx_ppo is not measured on vec_env 'envpool'"):
        measure_peer("sbx_ppo", "Hopper-v5", 1024, 0, 1, vec_env="envpool")

    calls = []

    def recorded(*arguments):
        calls.append(arguments)
        return Phases(1, 1.0, 0.5, 0.25)

    monkeypatch.setattr(throughput, "measure_peer", recorded)  # measure gives the peer its variant's engine
    m = measure("E", Variant("tianshou_trpo", "tianshou_trpo").on("envpool"), 0, timesteps=1, seed=0, threads=1)
    assert calls == [("tianshou_trpo", "E", 1, 0, 1, (), "envpool")] and m.label == "tianshou_trpo on envpool"


@pytest.mark.slow  # importing Tianshou: about 10 s
def test_tianshou_trpo_on_envpool_is_its_examples_envpool_path():
    pytest.importorskip("tianshou")
    envpool = pytest.importorskip("envpool")
    from tianshou.env import VectorEnvNormObs
    from tianshou.highlevel.env import EnvPoolFactory

    from sb3_trpo_critic.benchmarks.peers import tianshou_env_factory, tianshou_trpo_training
    from sb3_trpo_critic.benchmarks.results import RunSpec
    from sb3_trpo_critic.benchmarks.run import build_env
    from sb3_trpo_critic.envpool import EnvPoolVecEnv

    made = []
    make_gymnasium = envpool.make_gymnasium

    def spy(task, **kwargs):
        made.append((task, kwargs))
        return make_gymnasium(task, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(envpool, "make_gymnasium", spy)
        training = tianshou_trpo_training("Hopper-v5", seed=0, threads=1, vec_env="envpool")
    ((task, kwargs),) = made  # the training envs only, as EnvPoolFactory.create_venv makes them, plus num_threads
    assert task == "Hopper-v5" and sorted(kwargs) == ["num_envs", "num_threads", "seed"] and kwargs["num_envs"] == 16
    assert kwargs["num_threads"] == 1  # threads
    envs = training.envs
    assert isinstance(envs, VectorEnvNormObs) and envs.update_obs_rms and len(envs) == 16
    pool = envs.venv
    assert type(pool).__module__ == "abc" and "EnvPool" in type(pool).__name__  # EnvPool's pool, not a Tianshou venv
    assert pool.config["num_envs"] == 16 and pool.config["seed"] == kwargs["seed"]
    # the same worker threads as the pools of the rows "... on envpool" of ours, built with the benchmark's threads
    _, ours = build_env(RunSpec("trpo_critic", "Hopper-v5", 0, vec_env="envpool"), envpool_threads=1)
    adapter = ours.unwrapped
    assert isinstance(adapter, EnvPoolVecEnv) and pool.config["num_threads"] == adapter._pool.config["num_threads"] == 1
    ours.close()
    # num_threads is not among the factory's keyword arguments (they would reach create_env's gymnasium.make too)
    factory = tianshou_env_factory("Hopper-v5", "envpool", envpool_threads=1)
    assert factory.make_kwargs == {} and isinstance(factory.envpool_factory, EnvPoolFactory)
    assert type(tianshou_env_factory("Hopper-v5", "envpool").envpool_factory) is EnvPoolFactory  # the example's
    assert training.collector.buffer.buffer_num == 16
    stats = training.collector.collect(n_step=64, reset_before_collect=True)
    assert stats.n_collected_steps == 64 and envs.get_obs_rms().count > 16  # normalized by running statistics
    envs.close()
    docs = documented("**`tianshou_trpo`**")
    assert docs["vector env on EnvPool (`--vec-env envpool`)"].startswith("EnvPool's pool")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:jax is imported already")
def test_sbx_ppo_on_envpool_has_ppos_env_stack_on_envpool(jax_environment):
    pytest.importorskip("sbx")
    pytest.importorskip("envpool")
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_trpo_critic.benchmarks.peers import sbx_ppo_model
    from sb3_trpo_critic.benchmarks.results import RunSpec
    from sb3_trpo_critic.benchmarks.run import build_env
    from sb3_trpo_critic.envpool import EnvPoolVecEnv

    def stack(env):
        layers = [type(env)]
        while hasattr(env, "venv"):
            env = env.venv
            layers.append(type(env))
        return layers

    model = sbx_ppo_model("Hopper-v5", seed=0, threads=1, vec_env="envpool")
    env = model.get_env()
    _, ppo_env = build_env(RunSpec("ppo", "Hopper-v5", 0, vec_env="envpool"))
    assert isinstance(env, VecNormalize) and isinstance(env.unwrapped, EnvPoolVecEnv)
    assert stack(env) == stack(ppo_env) and env.num_envs == ppo_env.num_envs
    env.close()
    ppo_env.close()


# --- EnvPool's worker threads: --threads on every pool of the benchmark, EnvPool's default in the runner ----------


@pytest.fixture
def envpool_pools(monkeypatch):
    """Every EnvPool pool built while the test runs: (its keyword arguments, its configuration's num_threads)."""
    envpool = pytest.importorskip("envpool")
    pools = []
    make_gymnasium = envpool.make_gymnasium

    def spy(task, **kwargs):
        pool = make_gymnasium(task, **kwargs)
        pools.append((kwargs, pool.config["num_threads"]))
        return pool

    monkeypatch.setattr(envpool, "make_gymnasium", spy)
    return pools


def test_with_envpool_threads_adds_num_threads_and_refuses_an_entrys_own():
    import dataclasses

    from sb3_trpo_critic.benchmarks.run import with_envpool_threads
    from sb3_trpo_critic.zoo import load_zoo_hyperparameters

    zoo = dataclasses.replace(load_zoo_hyperparameters("trpo_critic", "Hopper-v5"), env_kwargs={"ctrl_cost_weight": 0.01})
    threaded = with_envpool_threads(zoo, 3)
    assert threaded.env_kwargs == {"ctrl_cost_weight": 0.01, "num_threads": 3}
    assert zoo.env_kwargs == {"ctrl_cost_weight": 0.01}  # a new record; the other fields as they were
    assert dataclasses.replace(threaded, env_kwargs=zoo.env_kwargs) == zoo
    with pytest.raises(ValueError, match="num_threads=2, which conflicts with the 1 EnvPool threads"):
        with_envpool_threads(dataclasses.replace(zoo, env_kwargs={"num_threads": 2}), 1)
    with pytest.raises(ValueError, match="must be >= 1"):
        with_envpool_threads(zoo, 0)


def test_build_env_gives_envpool_its_threads_on_envpool_only(envpool_pools):
    from stable_baselines3.common.vec_env import DummyVecEnv

    from sb3_trpo_critic.benchmarks.results import RunSpec
    from sb3_trpo_critic.benchmarks.run import build_env
    from sb3_trpo_critic.envpool import EnvPoolVecEnv

    spec = RunSpec("trpo_critic", "Hopper-v5", 0, hyperparams=(("n_envs", 2),), vec_env="envpool")
    for envpool_threads, expected in ((2, 2), (None, 0)):  # None: the comparison runner's, EnvPool's default
        zoo, env = build_env(spec, envpool_threads=envpool_threads)
        adapter = env.unwrapped
        assert isinstance(adapter, EnvPoolVecEnv) and adapter._pool.config["num_threads"] == expected
        assert zoo.env_kwargs.get("num_threads") == envpool_threads
        env.close()
    assert [num_threads for _, num_threads in envpool_pools] == [2, 0]
    zoo, env = build_env(RunSpec("trpo_critic", "Hopper-v5", 0, hyperparams=(("n_envs", 2),)), envpool_threads=2)
    assert "num_threads" not in zoo.env_kwargs and isinstance(env.unwrapped, DummyVecEnv)  # dummy: as without it
    env.close()
    assert len(envpool_pools) == 2


ENVPOOL_ROWS = [
    pytest.param(Variant("trpo_critic", "trpo_critic", (("n_envs", 2), ("n_steps", 64))), 128, None, id="trpo_critic"),
    pytest.param(Variant("ppo", "ppo", (("n_envs", 2), ("n_steps", 64))), 128, None, id="ppo"),
    pytest.param(Variant(ENV_STACK_LABEL, "trpo_critic", (("n_envs", 2),), env_stack=True), 128, None, id="env stack"),
    pytest.param(
        Variant("sbx_ppo", "sbx_ppo", (("n_steps", 64),)), 64, "sbx", id="sbx_ppo", marks=pytest.mark.slow
    ),  # importing JAX and compiling
    pytest.param(Variant("tianshou_trpo", "tianshou_trpo"), 1024, "tianshou", id="tianshou_trpo", marks=pytest.mark.slow),
]


@pytest.mark.filterwarnings("ignore:jax is imported already", "ignore:You are using tensors with different shape")
@pytest.mark.parametrize(("variant", "timesteps", "extra"), ENVPOOL_ROWS)
def test_measure_gives_every_envpool_pool_the_threads(envpool_pools, jax_environment, variant, timesteps, extra):
    """--threads 1: every pool a row on envpool builds (ours, the env stack, each peer's) has one worker thread."""
    if extra is not None:
        pytest.importorskip(extra)
    m = measure("Hopper-v5", variant.on("envpool"), 0, timesteps=timesteps, seed=0, threads=1)
    assert m.timesteps == timesteps and envpool_pools
    assert all(kwargs["num_threads"] == 1 and num_threads == 1 for kwargs, num_threads in envpool_pools), envpool_pools


def test_the_runners_run_one_leaves_envpool_its_default_threads(envpool_pools):
    from sb3_trpo_critic.benchmarks.results import RunSpec
    from sb3_trpo_critic.benchmarks.run import run_one

    hyperparams = (("n_envs", 2), ("n_steps", 64))
    spec = RunSpec(
        "trpo_critic", "Hopper-v5", 0, 128, eval_points=1, eval_episodes=1, hyperparams=hyperparams, vec_env="envpool"
    )
    result = run_one(spec)
    assert result.timesteps == 128 and len(envpool_pools) >= 2  # the training pool and the evaluation pool
    assert all("num_threads" not in kwargs and num_threads == 0 for kwargs, num_threads in envpool_pools), envpool_pools
