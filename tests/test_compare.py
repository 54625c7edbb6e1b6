"""The comparison runner on a tiny budget: result files, resume, report, Ray backend."""

import json
import os
import re
from typing import Any

import pytest

from sb3_trpo_critic.benchmarks import compare
from sb3_trpo_critic.benchmarks import sweep as sweep_module
from sb3_trpo_critic.benchmarks.compare import RunSpec, is_finished, result_path, run_one, run_sweep, write_report
from sb3_trpo_critic.benchmarks.sweep import SweepSummary, make_executor

TINY: dict[str, Any] = dict(timesteps=2048, eval_points=2, eval_episodes=2, threads=1)
SPECS = [RunSpec(algo, "CartPole-v1", seed, **TINY) for algo in ("trpo_critic", "ppo") for seed in (0, 1)]


def serial_executor(calls):
    """Runs specs in this process, recording which ones ran."""

    def execute(specs):
        for spec in specs:
            calls.append(spec.name)
            yield spec, run_one(spec)

    return execute


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A sweep interrupted after its first two runs, then resumed."""
    out = tmp_path_factory.mktemp("results")
    first_calls: list[str] = []

    def interrupted_executor(specs):
        for index, item in enumerate(serial_executor(first_calls)(specs)):
            if index == 2:
                raise Interrupted
            yield item

    with pytest.raises(Interrupted):
        run_sweep(SPECS, out, executor=interrupted_executor)
    finished_first = sorted(p.name for p in out.glob("*.json"))
    mtimes = {name: os.stat(out / name).st_mtime_ns for name in finished_first}
    # a half-written or corrupt file is not a finished run
    (out / f"{SPECS[3].name}.json").write_text('{"version": 1, "finished": tr')

    second_calls: list[str] = []
    summary = run_sweep(SPECS, out, executor=serial_executor(second_calls))
    return out, first_calls, finished_first, mtimes, second_calls, summary


def test_each_run_writes_one_finished_result_file(sweep):
    out = sweep[0]
    for spec in SPECS:
        path = result_path(out, spec)
        assert is_finished(path), path
        result = json.loads(path.read_text())
        assert result["algo"] == spec.algo and result["seed"] == spec.seed and result["env_id"] == "CartPole-v1"
        assert result["timesteps"] >= 2048
        assert result["curve"]["timesteps"][0] == 0 and result["curve"]["timesteps"][-1] == result["timesteps"]
        assert len(result["curve"]["mean_return"]) >= 3
        assert result["fps"] > 0 and 0 < result["train_share"] < 1
        assert result["final_mean_return"] == result["curve"]["mean_return"][-1]
    assert not list(out.glob("*.tmp"))


def test_resume_skips_finished_runs(sweep):
    out, first_calls, finished_first, mtimes, second_calls, summary = sweep
    assert len(first_calls) == 3 and len(finished_first) == 2  # the third run was lost to the interruption
    assert set(second_calls) == {spec.name for spec in SPECS} - {name[: -len(".json")] for name in finished_first}
    assert summary == SweepSummary(total=4, skipped=2, ran=2, failed=0)
    for name, mtime in mtimes.items():
        assert os.stat(out / name).st_mtime_ns == mtime  # finished data never rewritten
    # a third pass has nothing to do
    third_calls: list[str] = []
    assert run_sweep(SPECS, out, executor=serial_executor(third_calls)).skipped == 4
    assert third_calls == []


def test_report_has_tables_and_curves(sweep):
    out = sweep[0]
    report = write_report(out, out / "report")
    text = report.read_text()
    assert "## CartPole-v1" in text
    assert "| trpo_critic | 2 |" in text and "| ppo | 2 |" in text
    assert "IQM" in text and "fps" in text
    assert text.startswith("# ppo vs trpo_critic")
    assert re.search(r"^- trpo_critic (wins against|ties with|loses to) ppo: IQM", text, re.MULTILINE)
    for png in ("CartPole-v1_steps.png", "CartPole-v1_time.png"):
        path = out / "report" / png
        assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in text


@pytest.mark.slow
def test_command_line_runs_and_reports(tmp_path, capsys):
    args = ["--algos", "trpo_critic", "--envs", "Pendulum-v1", "--seeds", "1", "--timesteps", "1024"]
    args += ["--eval-points", "1", "--eval-episodes", "1", "--out", str(tmp_path)]
    assert compare.main(args) == 0
    assert "1 runs done, 0 already finished, 0 failed" in capsys.readouterr().out
    assert compare.main(args) == 0
    assert "0 runs done, 1 already finished" in capsys.readouterr().out
    assert compare.main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report" / "report.md").exists()


@pytest.mark.slow
def test_ray_backend_writes_the_same_files(tmp_path):
    ray = pytest.importorskip("ray")
    spec = RunSpec("trpo_critic", "CartPole-v1", 0, **TINY)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        run_sweep([spec], tmp_path / "ray", backend="ray")
    finally:
        ray.shutdown()
    run_sweep([spec], tmp_path / "local", workers=1)
    from_ray = json.loads(result_path(tmp_path / "ray", spec).read_text())
    local = json.loads(result_path(tmp_path / "local", spec).read_text())
    assert from_ray.keys() == local.keys()
    # CPU training at a fixed seed is deterministic: same evaluation curve either way
    assert from_ray["curve"]["timesteps"] == local["curve"]["timesteps"]
    assert from_ray["curve"]["mean_return"] == local["curve"]["mean_return"]
    assert from_ray["hyperparameters"] == local["hyperparameters"]


def test_make_executor_hands_its_arguments_to_the_backends_executor(monkeypatch):
    calls = []
    built = {"local": object(), "ray": object()}

    def builder(backend):
        def build(*args):
            calls.append((backend, *args))
            return built[backend]

        return build

    monkeypatch.setattr(sweep_module, "local_executor", builder("local"))
    monkeypatch.setattr(sweep_module, "ray_executor", builder("ray"))

    def run(spec):
        raise AssertionError("the executor is only built here, not run")

    assert make_executor(workers=3, run=run) is built["local"]  # local by default
    assert make_executor("ray", address="ray://head:10001", run=run) is built["ray"]
    assert calls == [("local", 3, run), ("ray", "ray://head:10001", run)]
    with pytest.raises(ValueError, match="unknown backend 'nope'; one of local, ray"):
        make_executor("nope")
    assert len(calls) == 2


def worker_pid(spec):
    """A run function for the worker processes (imported by them as ``tests.test_compare``): its process id."""
    return os.getpid()


@pytest.mark.slow
def test_the_local_executor_runs_each_spec_in_a_fresh_worker_process():
    specs = [RunSpec("trpo_critic", "CartPole-v1", seed) for seed in range(3)]
    outcomes = list(make_executor("local", workers=2, run=worker_pid)(specs))
    assert sorted(spec.seed for spec, _ in outcomes) == [0, 1, 2]
    pids = [pid for _, pid in outcomes]
    assert os.getpid() not in pids and len(set(pids)) == 3  # maxtasksperchild=1: one process per run


def test_parse_hyperparams():
    assert compare.parse_hyperparams(["n_envs:8", "learning_rate:1e-3", "normalize:True"]) == (
        ("n_envs", 8),
        ("learning_rate", 0.001),
        ("normalize", True),
    )
    # not a literal: kept as written, for rl-zoo3's preprocessing to evaluate as in the file
    assert compare.parse_hyperparams(["policy_kwargs:dict(net_arch=[32])"]) == (("policy_kwargs", "dict(net_arch=[32])"),)
    with pytest.raises(ValueError, match="KEY:VALUE"):
        compare.parse_hyperparams(["n_envs=8"])


@pytest.mark.slow
def test_hyperparams_override_the_zoo_entry_in_runs_of_their_own(tmp_path, capsys):
    args = ["--algos", "trpo_critic", "--envs", "CartPole-v1", "--seeds", "1", "--timesteps", "512"]
    args += ["--eval-points", "1", "--eval-episodes", "1", "--out", str(tmp_path)]
    overrides = ["--hyperparams", "n_envs:4", "n_steps:64", "policy_kwargs:dict(net_arch=[16])"]
    assert compare.main([*args, *overrides]) == 0
    assert compare.main(args) == 0
    plain_file = tmp_path / "trpo_critic__CartPole-v1__seed0.json"
    (changed_file,) = tmp_path.glob("trpo_critic__CartPole-v1__seed0__hp*.json")
    assert sorted(tmp_path.glob("*.json")) == sorted([plain_file, changed_file])
    changed = json.loads(changed_file.read_text())
    assert changed["hyperparameters"]["n_envs"] == 4 and changed["hyperparameters"]["n_steps"] == 64
    assert changed["hyperparameters"]["policy_kwargs"] == {"net_arch": [16]}
    assert changed["hyperparams_overrides"] == {"n_envs": 4, "n_steps": 64, "policy_kwargs": "dict(net_arch=[16])"}
    plain = json.loads(plain_file.read_text())
    assert plain["hyperparameters"]["n_envs"] == 2 and plain["hyperparams_overrides"] == {}
    assert compare.main(["report", str(tmp_path)]) == 0
    assert "entry changed by {'n_envs': 4" in (tmp_path / "report" / "report.md").read_text()
