"""Result files: the typed record and its versions, the committed version-1 files, permissions, unreadable files."""

import dataclasses
import json
import os
import shutil
import stat
import warnings
from pathlib import Path

import pytest

from sb3_trpo_critic.benchmarks import compare
from sb3_trpo_critic.benchmarks.report import write_report
from sb3_trpo_critic.benchmarks.run import RESULT_VERSION, ZOO_RULES, ResultFormatError, RunResult, RunSpec, entry_rule
from sb3_trpo_critic.benchmarks.sweep import (
    ResultStore,
    SweepSummary,
    UnreadableResultWarning,
    is_finished,
    make_executor,
    read_result,
    result_path,
    run_sweep,
    run_unless_finished,
    write_atomically,
)
from sb3_trpo_critic.zoo import load_zoo_hyperparameters

# Three version-1 result files of benchmarks/results/comparison/, copied: two written before --hyperparams
# (no "hyperparams_overrides" key), one after; zoo rules "exact" and "mujoco-v4".
COMMITTED = Path(__file__).resolve().parent / "data" / "version_1"
V1_CARTPOLE = COMMITTED / "trpo_critic__CartPole-v1__seed0.json"
V1_HOPPER = COMMITTED / "trpo__Hopper-v5__seed0.json"  # uses rl-zoo3's Hopper-v4 entry


def never_run(calls):
    def execute(specs):
        calls.extend(specs)
        return iter(())

    return execute


def test_committed_version_1_files_are_version_1():
    """The files the tests below rely on are version-1 files (of both shapes)."""
    files = sorted(COMMITTED.glob("*.json"))
    assert len(files) == 3
    versions = {json.loads(path.read_text())["version"] for path in files}
    assert versions == {1} and RESULT_VERSION != 1
    shapes = {"hyperparams_overrides" in json.loads(path.read_text()) for path in files}
    assert shapes == {True, False}  # files written before --hyperparams lack the key


def test_version_1_file_is_read_and_counted_as_finished(tmp_path):
    shutil.copy(V1_CARTPOLE, tmp_path / V1_CARTPOLE.name)
    spec = RunSpec("trpo_critic", "CartPole-v1", 0, timesteps=100_000, eval_points=10)
    assert result_path(tmp_path, spec).name == V1_CARTPOLE.name
    assert is_finished(result_path(tmp_path, spec))
    calls: list[RunSpec] = []
    assert run_sweep([spec], tmp_path, executor=never_run(calls)) == SweepSummary(total=1, skipped=1, ran=0, failed=0)
    assert calls == []
    assert (tmp_path / V1_CARTPOLE.name).read_bytes() == V1_CARTPOLE.read_bytes()  # not rewritten


def test_version_1_is_converted_on_load():
    data = json.loads(V1_HOPPER.read_text())
    result = read_result(V1_HOPPER)
    assert result.zoo_entry == "Hopper-v4" and result.zoo_rule == "mujoco-v4"
    assert result.environment is None  # not recorded in version 1
    written = result.to_json()
    assert written["version"] == RESULT_VERSION and written["zoo_rule"] == "mujoco-v4" and written["environment"] is None
    assert {key: value for key, value in written.items() if key in data and key != "version"} == {
        key: value for key, value in data.items() if key != "version"
    }
    # a file written before --hyperparams: no overrides
    without = next(path for path in sorted(COMMITTED.glob("*.json")) if "hyperparams_overrides" not in path.read_text())
    assert read_result(without).hyperparams_overrides == {}


def test_every_committed_file_is_read():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreadableResultWarning)
        loaded = ResultStore(COMMITTED).load()
    assert len(loaded.results) == 3 and loaded.unreadable == ()
    assert {result.zoo_rule for result in loaded.results} == {"exact", "mujoco-v4"}


def test_record_round_trips_through_its_file(tmp_path):
    result = dataclasses.replace(read_result(V1_CARTPOLE), zoo_note="a note")
    write_atomically(tmp_path / "x.json", result.to_json())
    assert read_result(tmp_path / "x.json") == result
    data = json.loads((tmp_path / "x.json").read_text())
    assert data["version"] == RESULT_VERSION and data["finished"] is True
    assert RunResult.from_json(data).to_json() == data


def test_unfinished_unknown_and_malformed_records_are_not_finished(tmp_path):
    data = json.loads(V1_CARTPOLE.read_text())
    for name, change, message in [
        ("unfinished", {"finished": False}, "not finished"),
        ("future", {"version": RESULT_VERSION + 1}, "version"),
        ("no_version", {"version": None}, "version"),
        ("no_fps", {"fps": None}, "malformed"),
    ]:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**data, **change}))
        assert not is_finished(path), name
        with pytest.raises(ResultFormatError, match=message):
            read_result(path)
    del data["curve"]
    (tmp_path / "no_curve.json").write_text(json.dumps(data))
    with pytest.raises(ResultFormatError, match="without key 'curve'"):
        read_result(tmp_path / "no_curve.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ResultFormatError, match="not a result record"):
        read_result(tmp_path / "list.json")
    assert not is_finished(tmp_path / "missing.json")


def test_report_names_the_files_it_could_not_read(tmp_path):
    shutil.copy(V1_CARTPOLE, tmp_path / V1_CARTPOLE.name)
    (tmp_path / "trpo__CartPole-v1__seed0.json").write_text('{"version": 1, "finished": tr')
    (tmp_path / "ppo__CartPole-v1__seed0.json").write_text(json.dumps({"version": 1, "finished": False}))
    with pytest.warns(UnreadableResultWarning) as caught:
        report = write_report(tmp_path, tmp_path / "report")
    warned = " ".join(str(warning.message) for warning in caught)
    assert "trpo__CartPole-v1__seed0.json" in warned and "ppo__CartPole-v1__seed0.json" in warned
    text = report.read_text()
    section = text.split("## Result files not read", 1)[1].split("\n## ", 1)[0]
    assert "`trpo__CartPole-v1__seed0.json`: not valid JSON" in section
    assert "`ppo__CartPole-v1__seed0.json`: the run is not finished" in section
    assert "1 runs from" in text and "| trpo_critic | 1 |" in text


def test_report_of_a_folder_without_unreadable_files_has_no_such_section(tmp_path):
    shutil.copy(V1_CARTPOLE, tmp_path / V1_CARTPOLE.name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreadableResultWarning)
        text = write_report(tmp_path, tmp_path / "report").read_text()
    assert "not read" not in text


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077], ids=oct)
def test_result_files_have_ordinary_permissions(tmp_path, umask):
    result = read_result(V1_CARTPOLE)
    previous = os.umask(umask)
    try:
        path = ResultStore(tmp_path / "runs").write(RunSpec("trpo_critic", "CartPole-v1", 0), result)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_entry_rule_names_the_rule_of_select_entry():
    assert entry_rule("CartPole-v1", "CartPole-v1") == "exact"
    assert entry_rule("Hopper-v5", "Hopper-v4") == "mujoco-v4"
    # (the 'atari' rule needs ale-py to register Atari ids: entry_candidates checks the registry)
    assert entry_rule("FrozenLake-v1", "default") == "default"
    with pytest.raises(ValueError, match="no entry-selection rule"):
        entry_rule("Hopper-v5", "Walker2d-v4")
    assert set(ZOO_RULES) == {"exact", "mujoco-v4", "atari", "default", "constructor-defaults"}
    # and agrees with the entries select_entry chooses
    for algo, env_id, rule in [
        ("ppo", "CartPole-v1", "exact"),
        ("ppo", "Hopper-v5", "mujoco-v4"),
        ("trpo_critic", "FrozenLake-v1", "default"),
    ]:
        zoo = load_zoo_hyperparameters(algo, env_id)
        assert entry_rule(env_id, zoo.entry) == rule, (algo, env_id)


def test_one_way_to_choose_the_executor():
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        make_executor("nope")
    assert callable(make_executor("local", workers=2)) and callable(make_executor("ray"))


def test_command_line_subcommands(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--help"])
    assert exit_info.value.code == 0
    assert "{run,report}" in capsys.readouterr().out
    for argv in (["--envs", "CartPole-v1", "--seeds", "0", "--out", str(tmp_path)], ["run", "--hyperparams", "n_envs=8"]):
        with pytest.raises(SystemExit) as exit_info:
            compare.main(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seeds: must be >= 1, got 0" in err and "--hyperparams takes KEY:VALUE, got 'n_envs=8'" in err
    # `report` reads version-1 files; `run` with or without the subcommand skips them as finished
    shutil.copy(V1_CARTPOLE, tmp_path / V1_CARTPOLE.name)
    run = ["--algos", "trpo_critic", "--envs", "CartPole-v1", "--seeds", "1", "--out", str(tmp_path)]
    run += ["--timesteps", "512", "--eval-points", "1", "--eval-episodes", "1"]  # cheap, should it run
    for argv in (run, ["run", *run]):
        assert compare.main(argv) == 0
        assert "0 runs done, 1 already finished, 0 failed" in capsys.readouterr().out
    assert compare.main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").exists()


def test_verdict_is_win_tie_or_loss_by_the_intervals():
    from sb3_trpo_critic.benchmarks.report import verdict

    intervals = {
        "trpo_critic": (10.0, 9.0, 11.0),
        "ppo": (5.0, 4.0, 6.0),
        "trpo": (10.5, 8.0, 12.0),
        "a2c": (20.0, 19.0, 21.0),
    }
    assert verdict("trpo_critic", "ppo", intervals).startswith("wins against ppo: IQM 10.0 [9.0, 11.0] vs 5.0")
    assert verdict("trpo_critic", "trpo", intervals).startswith("ties with trpo")
    assert verdict("trpo_critic", "trpo", intervals).endswith("(the intervals overlap)")
    assert verdict("trpo_critic", "a2c", intervals).startswith("loses to a2c")
    # touching intervals are not apart
    assert verdict("trpo_critic", "x", {**intervals, "x": (12.0, 11.0, 13.0)}).startswith("ties with x")


# --- several sweeps on one folder ---------------------------------------------------------------

CARTPOLE_SPECS = [RunSpec("trpo_critic", "CartPole-v1", seed, timesteps=100_000, eval_points=10) for seed in (0, 1)]


def test_run_unless_finished_runs_only_when_the_file_is_not_finished(tmp_path):
    spec = CARTPOLE_SPECS[0]
    calls: list[RunSpec] = []

    def run(spec: RunSpec) -> RunResult:
        calls.append(spec)
        return read_result(V1_HOPPER)

    assert run_unless_finished(run, tmp_path, spec) == read_result(V1_HOPPER)  # no file
    result_path(tmp_path, spec).write_text('{"version": 2, "finished": tr')
    assert run_unless_finished(run, tmp_path, spec) == read_result(V1_HOPPER)  # not a finished result
    assert calls == [spec, spec]
    shutil.copy(V1_CARTPOLE, result_path(tmp_path, spec))
    assert run_unless_finished(run, tmp_path, spec) == read_result(V1_CARTPOLE)  # finished: not run
    assert calls == [spec, spec]


def another_sweep_finishes_the_second_run(spec: RunSpec) -> RunResult:
    """A run (in a spawned worker) during which another sweep on the same folder finishes the second spec."""
    out = Path(os.environ["SB3_TRPO_CRITIC_TEST_OUT"])
    (out / f"{spec.name}.ran").touch()
    if spec == CARTPOLE_SPECS[0]:
        shutil.copy(V1_HOPPER, result_path(out, CARTPOLE_SPECS[1]))
    return read_result(V1_CARTPOLE)


def test_a_run_that_another_sweep_finished_meanwhile_is_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_TRPO_CRITIC_TEST_OUT", str(tmp_path))
    summary = run_sweep(CARTPOLE_SPECS, tmp_path, workers=1, run=another_sweep_finishes_the_second_run)
    assert summary == SweepSummary(total=2, skipped=1, ran=1, failed=0)
    assert sorted(path.name for path in tmp_path.glob("*.ran")) == [f"{CARTPOLE_SPECS[0].name}.ran"]
    assert result_path(tmp_path, CARTPOLE_SPECS[1]).read_bytes() == V1_HOPPER.read_bytes()  # the other sweep's file


def test_a_result_is_not_written_over_the_file_another_sweep_finished_meanwhile(tmp_path):
    spec = CARTPOLE_SPECS[0]

    def both_sweeps_run_it(specs):
        for spec in specs:
            result = read_result(V1_HOPPER)
            shutil.copy(V1_CARTPOLE, result_path(tmp_path, spec))  # the other sweep's run ended first
            yield spec, result

    summary = run_sweep([spec], tmp_path, executor=both_sweeps_run_it)
    assert summary == SweepSummary(total=1, skipped=1, ran=0, failed=0)
    assert result_path(tmp_path, spec).read_bytes() == V1_CARTPOLE.read_bytes()


def test_report_names_a_relative_results_folder_as_given(tmp_path, monkeypatch):
    """A reader (and tests/test_results_held.py) finds the files from where the command ran."""
    folder = tmp_path / "benchmarks" / "results" / "study"
    folder.mkdir(parents=True)
    shutil.copy(V1_CARTPOLE, folder / V1_CARTPOLE.name)
    monkeypatch.chdir(tmp_path)
    relative = write_report(Path("benchmarks/results/study"), tmp_path / "relative").read_text()
    assert relative.splitlines()[2].startswith("1 runs from `benchmarks/results/study/`.")
    absolute = write_report(folder, tmp_path / "absolute").read_text()
    assert absolute.splitlines()[2].startswith("1 runs from `study/`.")  # no machine's path in a report
