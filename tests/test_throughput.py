"""The throughput benchmark's pieces, and TRPOCritic's rollout settings."""

import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.benchmarks.throughput import Measurement, Variant, measure, parse_variant, schedule, summarize


def test_parse_variant():
    assert parse_variant("trpo") == Variant("trpo", "trpo")
    variant = parse_variant("trpo_critic[n_envs=8,n_steps=256,use_sde=None]")
    assert variant.algo == "trpo_critic"
    assert variant.overrides == (("n_envs", 8), ("n_steps", 256), ("use_sde", None))
    for bad in ("trpo_critic[n_envs=8", "trpo_critic[n_envs]", "trpo_critic[n_envs=abc]"):
        with pytest.raises(ValueError):
            parse_variant(bad)


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
