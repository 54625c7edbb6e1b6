"""Result files: the typed record and its version, the committed files (converted from version 1), version 1 refused,
permissions, unreadable files."""

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
from sb3_trpo_critic.benchmarks.results import (
    READABLE_VERSIONS,
    RESULT_VERSION,
    ZOO_RULES,
    ResultFormatError,
    ResultStore,
    RunResult,
    RunSpec,
    UnreadableResultWarning,
    is_finished,
    read_result,
    result_path,
    write_atomically,
)
from sb3_trpo_critic.benchmarks.sweep import SweepSummary, make_executor, run_sweep, run_unless_finished
from sb3_trpo_critic.zoo import load_zoo_hyperparameters
from sb3_trpo_critic.zoo.hyperparameters import entry_candidates

ROOT = Path(__file__).resolve().parent.parent
# Three result files of benchmarks/results/comparison/, copied, written in version 1 and converted to version 2 (as
# every committed version-1 file was): two written before --hyperparams (no "hyperparams_overrides" key, now {}), one
# after; zoo rules "exact" and "mujoco-v4" (derived from zoo_entry); environment null (version 1 did not record it).
COMMITTED = ROOT / "tests" / "data" / "version_2"
CARTPOLE = COMMITTED / "trpo_critic__CartPole-v1__seed0.json"
HOPPER = COMMITTED / "trpo__Hopper-v5__seed0.json"  # uses rl-zoo3's Hopper-v4 entry
# The version-1 file CARTPOLE was converted from, as it was committed: version 1 is no longer read.
V1_CARTPOLE = ROOT / "tests" / "data" / "version_1" / "trpo_critic__CartPole-v1__seed0.json"
# The committed results folders (benchmarks/results/throughput holds the throughput benchmark's measurements).
RESULTS_FOLDERS = sorted(
    path for path in (ROOT / "benchmarks" / "results").iterdir() if path.is_dir() and path.name != "throughput"
)


def never_run(calls):
    def execute(specs):
        calls.extend(specs)
        return iter(())

    return execute


def test_committed_test_files_are_of_a_read_version():
    """The files the tests below rely on are version-2 files, converted from version 1 (of both shapes); version 3
    (which adds vec_env) is written, version 2 still read."""
    files = sorted(COMMITTED.glob("*.json"))
    assert len(files) == 3
    versions = {json.loads(path.read_text())["version"] for path in files}
    assert versions == {2} and READABLE_VERSIONS == (2, 3) and RESULT_VERSION == 3
    assert json.loads(V1_CARTPOLE.read_text())["version"] == 1
    # files written before --hyperparams lacked the key: converted with none
    assert {json.dumps(json.loads(path.read_text())["hyperparams_overrides"]) for path in files} == {"{}"}


def test_version_1_file_is_converted_with_the_rule_its_entry_determines():
    """The conversion of the committed version-1 files: zoo_rule from zoo_entry, environment null, overrides {}."""
    v1 = json.loads(V1_CARTPOLE.read_text())
    assert "hyperparams_overrides" not in v1 and "zoo_rule" not in v1 and "environment" not in v1
    converted = json.loads(CARTPOLE.read_text())
    assert converted == {**v1, "version": 2, "zoo_rule": "exact", "hyperparams_overrides": {}, "environment": None}
    assert CARTPOLE.read_text() == json.dumps(converted, indent=1)  # as write_atomically writes it


def test_result_file_is_read_and_counted_as_finished(tmp_path):
    shutil.copy(CARTPOLE, tmp_path / CARTPOLE.name)
    spec = RunSpec("trpo_critic", "CartPole-v1", 0, timesteps=100_000, eval_points=10)
    assert result_path(tmp_path, spec).name == CARTPOLE.name
    assert is_finished(result_path(tmp_path, spec))
    calls: list[RunSpec] = []
    assert run_sweep([spec], tmp_path, executor=never_run(calls)) == SweepSummary(total=1, skipped=1, ran=0, failed=0)
    assert calls == []
    assert (tmp_path / CARTPOLE.name).read_bytes() == CARTPOLE.read_bytes()  # not rewritten


def test_version_1_file_is_refused_and_run_again(tmp_path):
    with pytest.raises(ResultFormatError, match=r"result format version 1 is no longer read .*zoo_rule.*reads \(2, 3\)"):
        read_result(V1_CARTPOLE)
    shutil.copy(V1_CARTPOLE, tmp_path / V1_CARTPOLE.name)
    spec = RunSpec("trpo_critic", "CartPole-v1", 0, timesteps=100_000, eval_points=10)
    assert result_path(tmp_path, spec).name == V1_CARTPOLE.name
    assert not is_finished(result_path(tmp_path, spec))
    calls: list[RunSpec] = []
    run_sweep([spec], tmp_path, executor=never_run(calls))
    assert calls == [spec]  # not counted as finished: the sweep runs it
    with pytest.warns(UnreadableResultWarning, match="version 1 is no longer read"):
        loaded = ResultStore(tmp_path).load()
    assert loaded.results == () and [item.path.name for item in loaded.unreadable] == [V1_CARTPOLE.name]


def test_converted_file_is_read():
    data = json.loads(HOPPER.read_text())
    result = read_result(HOPPER)
    assert result.zoo_entry == "Hopper-v4" and result.zoo_rule == "mujoco-v4"
    assert result.environment is None  # not recorded in version 1
    assert result.vec_env == "dummy"  # a version-2 file: before there was a choice
    written = result.to_json()
    assert written["version"] == RESULT_VERSION and written["zoo_rule"] == "mujoco-v4" and written["environment"] is None
    # written again: version 3, and a record of the libraries that is empty (version 2 did not record them)
    assert written == {**data, "version": 3, "vec_env": "dummy", "machine": {**data["machine"], "libraries": {}}}
    # a file written before --hyperparams: no overrides
    assert read_result(CARTPOLE).hyperparams_overrides == {}


def test_the_engine_is_in_the_name_only_when_it_is_not_the_default():
    """Runs on gymnasium (dummy) keep their names, so the committed files are found; EnvPool runs get a suffix."""
    assert RunSpec("trpo_critic", "CartPole-v1", 0).name == "trpo_critic__CartPole-v1__seed0"
    assert RunSpec("trpo_critic", "CartPole-v1", 0, vec_env="dummy") == RunSpec("trpo_critic", "CartPole-v1", 0)
    assert RunSpec("ppo", "Hopper-v5", 1, vec_env="envpool").name == "ppo__Hopper-v5__seed1__envpool"
    spec = RunSpec("ppo", "Hopper-v5", 1, hyperparams=(("n_envs", 8),), defaults=True, vec_env="envpool")
    assert spec.name.startswith("ppo__Hopper-v5__seed1__defaults__envpool__hp")
    with pytest.raises(ValueError, match="unknown vec_env 'subproc'; choose from dummy, envpool"):
        RunSpec("ppo", "Hopper-v5", 1, vec_env="subproc")
    data = {**json.loads(CARTPOLE.read_text()), "version": 3}
    with pytest.raises(ResultFormatError, match="version-3 result without key 'vec_env'"):
        RunResult.from_json(data)
    with pytest.raises(ResultFormatError, match="unknown vec_env 'gpu'"):
        RunResult.from_json({**data, "vec_env": "gpu"})
    assert RunResult.from_json({**data, "vec_env": "envpool"}).vec_env == "envpool"


def test_every_committed_file_is_read():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreadableResultWarning)
        loaded = ResultStore(COMMITTED).load()
    assert len(loaded.results) == 3 and loaded.unreadable == ()
    assert {result.zoo_rule for result in loaded.results} == {"exact", "mujoco-v4"}


@pytest.mark.parametrize("folder", RESULTS_FOLDERS, ids=lambda folder: folder.name)
def test_every_committed_results_folder_is_read(folder):
    """Every .json file of benchmarks/results/<study>/ is a finished result of this version (none left in version 1),
    and its zoo rule is the one that chooses its entry."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreadableResultWarning)
        loaded = ResultStore(folder).load()
    assert len(loaded.results) == len(list(folder.glob("*.json"))) > 0 and loaded.unreadable == ()
    for result in loaded.results:
        if result.zoo_rule != "constructor-defaults":
            assert (result.zoo_entry, result.zoo_rule) in entry_candidates(result.env_id), result


def test_the_committed_results_folders_are_found():
    assert {"comparison", "comparison_1m", "recurrent", "tuning", "tuning_1m"} <= {folder.name for folder in RESULTS_FOLDERS}


def test_record_round_trips_through_its_file(tmp_path):
    result = dataclasses.replace(read_result(CARTPOLE), zoo_note="a note")
    write_atomically(tmp_path / "x.json", result.to_json())
    assert read_result(tmp_path / "x.json") == result
    data = json.loads((tmp_path / "x.json").read_text())
    assert data["version"] == RESULT_VERSION and data["finished"] is True
    assert RunResult.from_json(data).to_json() == data


def test_a_result_records_the_versions_of_the_libraries_that_produced_it(tmp_path):
    """EnvPool's MuJoCo is its own implementation, and every library changes: a result says which versions made it. The
    record is part of version 3: a file without it (every committed one) reads with an empty record."""
    import gymnasium
    import stable_baselines3

    from sb3_trpo_critic.benchmarks.run import LIBRARIES, run_one

    spec = RunSpec("trpo_critic", "CartPole-v1", 0, 128, 1, 1, hyperparams=(("n_steps", 64), ("n_envs", 2)))
    result = run_one(spec)
    libraries = result.machine.libraries
    assert libraries["stable_baselines3"] == stable_baselines3.__version__
    assert libraries["gymnasium"] == gymnasium.__version__
    assert set(libraries) <= set(LIBRARIES) and "sb3_trpo_critic" in libraries and "rl_zoo3" in libraries
    path = ResultStore(tmp_path).write(spec, result)
    data = json.loads(path.read_text())
    assert data["version"] == RESULT_VERSION == 3 and data["machine"]["libraries"] == libraries
    assert read_result(path) == result and RunResult.from_json(data).to_json() == data
    # a file written before the record: version 2, and version 3 without the key
    assert "libraries" not in json.loads(CARTPOLE.read_text())["machine"]
    assert read_result(CARTPOLE).machine.libraries == {}
    del data["machine"]["libraries"]
    assert RunResult.from_json(data) == dataclasses.replace(result, machine=dataclasses.replace(result.machine, libraries={}))
    data["machine"]["libraries"] = ["gymnasium"]
    with pytest.raises(ResultFormatError, match="malformed version-3 result: libraries is a JSON list"):
        RunResult.from_json(data)


def test_unfinished_unknown_and_malformed_records_are_not_finished(tmp_path):
    data = json.loads(CARTPOLE.read_text())
    # (name, the keys changed in the record, the error's message): the changes' values are of several JSON types
    cases: list[tuple[str, dict[str, object], str]] = [
        ("unfinished", {"finished": False}, "not finished"),
        ("future", {"version": RESULT_VERSION + 1}, "version"),
        ("version_1", {"version": 1}, "version 1 is no longer read"),
        ("no_version", {"version": None}, "version"),
        ("no_fps", {"fps": None}, "malformed"),
    ]
    for name, change, message in cases:
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
    shutil.copy(CARTPOLE, tmp_path / CARTPOLE.name)
    (tmp_path / "trpo__CartPole-v1__seed0.json").write_text('{"version": 2, "finished": tr')
    (tmp_path / "ppo__CartPole-v1__seed0.json").write_text(json.dumps({"version": RESULT_VERSION, "finished": False}))
    shutil.copy(V1_CARTPOLE, tmp_path / "trpo_critic__CartPole-v1__seed1.json")
    with pytest.warns(UnreadableResultWarning) as caught:
        report = write_report(tmp_path, tmp_path / "report")
    warned = " ".join(str(warning.message) for warning in caught)
    assert "trpo__CartPole-v1__seed0.json" in warned and "ppo__CartPole-v1__seed0.json" in warned
    assert "trpo_critic__CartPole-v1__seed1.json" in warned
    text = report.read_text()
    section = text.split("## Result files not read", 1)[1].split("\n## ", 1)[0]
    assert "`trpo__CartPole-v1__seed0.json`: not valid JSON" in section
    assert "`ppo__CartPole-v1__seed0.json`: the run is not finished" in section
    assert "`trpo_critic__CartPole-v1__seed1.json`: result format version 1 is no longer read" in section
    assert "1 runs from" in text and "| trpo_critic | 1 |" in text


def test_report_does_not_pool_runs_on_different_engines(tmp_path):
    """EnvPool's MuJoCo is its own implementation: its runs are reported apart from gymnasium's."""
    shutil.copy(CARTPOLE, tmp_path / CARTPOLE.name)
    envpool = {**json.loads(CARTPOLE.read_text()), "version": 3, "vec_env": "envpool", "final_mean_return": 1.0}
    (tmp_path / "trpo_critic__CartPole-v1__seed0__envpool.json").write_text(json.dumps(envpool))
    text = write_report(tmp_path, tmp_path / "report").read_text()
    assert "| trpo_critic (dummy) | 1 |" in text and "| trpo_critic (envpool) | 1 | 1.0 ± 0.0 |" in text
    assert "on different engines (dummy, envpool)" in text
    (tmp_path / CARTPOLE.name).unlink()
    text = write_report(tmp_path, tmp_path / "report").read_text()
    assert "| trpo_critic | 1 |" in text
    assert "Environments: envpool's (compare these returns only with runs on envpool)." in text


def test_report_of_a_folder_without_unreadable_files_has_no_such_section(tmp_path):
    shutil.copy(CARTPOLE, tmp_path / CARTPOLE.name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnreadableResultWarning)
        text = write_report(tmp_path, tmp_path / "report").read_text()
    assert "not read" not in text


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077], ids=oct)
def test_result_files_have_ordinary_permissions(tmp_path, umask):
    result = read_result(CARTPOLE)
    previous = os.umask(umask)
    try:
        path = ResultStore(tmp_path / "runs").write(RunSpec("trpo_critic", "CartPole-v1", 0), result)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~umask
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_zoo_rules_are_the_rules_of_select_entry():
    assert set(ZOO_RULES) == {"exact", "mujoco-v4", "atari", "default", "constructor-defaults"}
    # (the 'atari' rule needs ale-py to register Atari ids: entry_candidates checks the registry)
    for algo, env_id, entry, rule in [
        ("ppo", "CartPole-v1", "CartPole-v1", "exact"),
        ("ppo", "Hopper-v5", "Hopper-v4", "mujoco-v4"),
        ("trpo_critic", "FrozenLake-v1", "default", "default"),
    ]:
        zoo = load_zoo_hyperparameters(algo, env_id)
        assert (zoo.entry, zoo.rule) == (entry, rule), (algo, env_id)
        assert (entry, rule) in entry_candidates(env_id)
    assert ("Walker2d-v4", "mujoco-v4") not in entry_candidates("Hopper-v5")


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
    # `report` reads result files; `run` with or without the subcommand skips them as finished
    shutil.copy(CARTPOLE, tmp_path / CARTPOLE.name)
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
        return read_result(HOPPER)

    assert run_unless_finished(run, tmp_path, spec) == read_result(HOPPER)  # no file
    result_path(tmp_path, spec).write_text('{"version": 2, "finished": tr')
    assert run_unless_finished(run, tmp_path, spec) == read_result(HOPPER)  # not a finished result
    assert calls == [spec, spec]
    shutil.copy(CARTPOLE, result_path(tmp_path, spec))
    assert run_unless_finished(run, tmp_path, spec) == read_result(CARTPOLE)  # finished: not run
    assert calls == [spec, spec]


def another_sweep_finishes_the_second_run(spec: RunSpec) -> RunResult:
    """A run (in a spawned worker) during which another sweep on the same folder finishes the second spec."""
    out = Path(os.environ["SB3_TRPO_CRITIC_TEST_OUT"])
    (out / f"{spec.name}.ran").touch()
    if spec == CARTPOLE_SPECS[0]:
        shutil.copy(HOPPER, result_path(out, CARTPOLE_SPECS[1]))
    return read_result(CARTPOLE)


def test_a_run_that_another_sweep_finished_meanwhile_is_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SB3_TRPO_CRITIC_TEST_OUT", str(tmp_path))
    summary = run_sweep(CARTPOLE_SPECS, tmp_path, workers=1, run=another_sweep_finishes_the_second_run)
    assert summary == SweepSummary(total=2, skipped=1, ran=1, failed=0)
    assert sorted(path.name for path in tmp_path.glob("*.ran")) == [f"{CARTPOLE_SPECS[0].name}.ran"]
    assert result_path(tmp_path, CARTPOLE_SPECS[1]).read_bytes() == HOPPER.read_bytes()  # the other sweep's file


def test_a_result_is_not_written_over_the_file_another_sweep_finished_meanwhile(tmp_path):
    spec = CARTPOLE_SPECS[0]

    def both_sweeps_run_it(specs):
        for spec in specs:
            result = read_result(HOPPER)
            shutil.copy(CARTPOLE, result_path(tmp_path, spec))  # the other sweep's run ended first
            yield spec, result

    summary = run_sweep([spec], tmp_path, executor=both_sweeps_run_it)
    assert summary == SweepSummary(total=1, skipped=1, ran=0, failed=0)
    assert result_path(tmp_path, spec).read_bytes() == CARTPOLE.read_bytes()


def test_report_names_a_relative_results_folder_as_given(tmp_path, monkeypatch):
    """A reader (and tests/test_results_held.py) finds the files from where the command ran."""
    folder = tmp_path / "benchmarks" / "results" / "study"
    folder.mkdir(parents=True)
    shutil.copy(CARTPOLE, folder / CARTPOLE.name)
    monkeypatch.chdir(tmp_path)
    relative = write_report(Path("benchmarks/results/study"), tmp_path / "relative").read_text()
    assert relative.splitlines()[2].startswith("1 runs from `benchmarks/results/study/`.")
    absolute = write_report(folder, tmp_path / "absolute").read_text()
    assert absolute.splitlines()[2].startswith("1 runs from `study/`.")  # no machine's path in a report
