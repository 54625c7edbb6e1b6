"""The throughput benchmark's pieces, and TRPOCritic's rollout settings."""

import re

import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks import throughput
from sb3_trpo_critic.benchmarks.throughput import Measurement, Variant, measure, parse_variant, schedule, summarize


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


def test_command_line_takes_variants_after_the_algorithms(monkeypatch, capsys):
    jobs = []

    class FakePool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return False

        def imap(self, function, arguments):
            for job in arguments:
                jobs.append(job)
                env_id, variant, round_ = job[:3]
                yield Measurement(env_id, variant.label, round_, 1000, 1.0, 0.5, 0.25)

    class Context:
        Pool = FakePool

    monkeypatch.setattr(throughput.multiprocessing, "get_context", lambda method: Context())
    argv = ["--envs", "E", "--algos", "trpo_critic", "ppo", "--variant", "trpo_critic", "n_envs:8", "--rounds", "1"]
    assert throughput.main(argv) == 0
    assert [job[1] for job in jobs] == [
        Variant("trpo_critic", "trpo_critic"),
        Variant("ppo", "ppo"),
        Variant("trpo_critic n_envs:8", "trpo_critic", (("n_envs", 8),)),
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
    assert built == [(spec, {"device": "cpu"})]
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
