"""rl-zoo3 integration: the hyperparameter file, load_zoo_hyperparameters, the sb3-trpo-critic command."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

pytest.importorskip("rl_zoo3")
pytest.importorskip("optuna")

from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import RecurrentTRPOCritic, TRPOCritic, from_sb3_contrib
from sb3_trpo_critic.translate import kl_dimensions
from sb3_trpo_critic.zoo import (
    HYPERPARAMS_FILE,
    ZooError,
    hyperparameter_file,
    load_zoo_hyperparameters,
    register,
)
from sb3_trpo_critic.zoo.cli import main

ROOT = Path(__file__).resolve().parent.parent
ROOT_FILE = ROOT / "hyperparams" / "trpo_critic.yml"
TABLE: dict = yaml.safe_load(HYPERPARAMS_FILE.read_text())
RECURRENT_TABLE: dict = yaml.safe_load(HYPERPARAMS_FILE.with_name("recurrent_trpo_critic.yml").read_text())

REQUIRED = [
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Pendulum-v1",
    "MountainCarContinuous-v0",
    "LunarLander-v3",
    "LunarLanderContinuous-v3",
    "BipedalWalker-v3",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Swimmer-v5",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "Reacher-v5",
    "Humanoid-v5",
    "atari",
    "default",
]
MUJOCO_V5 = [key for key in REQUIRED if key.endswith("-v5")]
# The rl-zoo3 trpo.yml entry each of ours is converted from, and the action dimension (1 for Discrete).
# (Pendulum-v1 is not listed: its target_kl was tuned here.)
CONVERTED_FROM = {
    "CartPole-v1": ("CartPole-v1", 1),
    "Acrobot-v1": ("Acrobot-v1", 1),
    "MountainCar-v0": ("MountainCar-v0", 1),
    "MountainCarContinuous-v0": ("MountainCarContinuous-v0", 1),
    "LunarLander-v3": ("LunarLander-v3", 1),
    "LunarLanderContinuous-v3": ("LunarLanderContinuous-v3", 2),
    "BipedalWalker-v3": ("BipedalWalker-v3", 4),
    "HalfCheetah-v5": ("HalfCheetah-v4", 6),
    "Hopper-v5": ("Hopper-v4", 3),
    "Walker2d-v5": ("Walker2d-v4", 6),
    "Ant-v5": ("Ant-v4", 8),
    "Swimmer-v5": ("Swimmer-v4", 2),
    "Humanoid-v5": ("Humanoid-v4", 17),
}
TRACEBACK = "Traceback (most recent call last)"


def _installed(env_id: str) -> str | None:
    """Why ``env_id`` cannot be made here, or None if it can."""
    if env_id == "atari":
        return None if importlib.util.find_spec("ale_py") else "no Atari (ale_py and ROMs not installed)"
    if env_id == "default":
        return None
    entry_point = str(gym.spec(env_id).entry_point)
    for marker, module in (("mujoco", "mujoco"), ("box2d", "Box2D")):
        if marker in entry_point and importlib.util.find_spec(module) is None:
            return f"{module} not installed"
    return None


# --- the hyperparameter file ---------------------------------------------------------------------


def test_the_root_file_is_a_link_to_the_packaged_file():
    """One hyperparameter file: the package's; hyperparams/trpo_critic.yml only points to it."""
    assert HYPERPARAMS_FILE.is_file() and not HYPERPARAMS_FILE.is_symlink()
    assert ROOT_FILE.is_symlink() and ROOT_FILE.resolve() == HYPERPARAMS_FILE.resolve()


def test_required_entries_and_v5_normalization():
    assert set(REQUIRED) <= set(TABLE)
    for env_id in MUJOCO_V5:
        assert TABLE[env_id]["normalize"] is True, env_id
    assert TABLE["atari"]["policy"] == "CnnPolicy"


@pytest.mark.parametrize("algo", ["trpo_critic", "recurrent_trpo_critic"])
def test_every_entry_says_whether_it_was_tuned(algo):
    lines = hyperparameter_file(algo).read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^([A-Za-z][\w/.-]*):", line)
        if not match:
            continue
        comment: list[str] = []
        for previous in reversed(lines[:index]):
            if not previous.startswith("#"):
                break
            comment.insert(0, previous)
        text = " ".join(comment)
        assert re.search(r"starting point|tuned here", text), f"{match.group(1)}: no comment saying tuned or starting point"
        if "tuned here" in text:
            assert re.search(r"\d", text), f"{match.group(1)}: a tuned entry gives its score and budget"


def test_target_kl_is_converted_to_the_full_kl():
    zoo_trpo = yaml.safe_load(hyperparameter_file("trpo").read_text())
    for ours, (theirs, action_dim) in CONVERTED_FROM.items():
        space: gym.Space = gym.spaces.Box(-1.0, 1.0, (action_dim,)) if action_dim > 1 else gym.spaces.Discrete(2)
        if _installed(ours) is None:
            env = gym.make(ours)
            space = env.action_space
            env.close()
            assert kl_dimensions(space) == action_dim, ours
        translated = from_sb3_contrib(zoo_trpo[theirs], space)  # sb3_contrib.TRPO's default target_kl if absent
        assert TABLE[ours]["target_kl"] == pytest.approx(translated["target_kl"]), ours


@pytest.mark.parametrize(
    ("algo", "key"),
    [("trpo_critic", key) for key in TABLE] + [("recurrent_trpo_critic", key) for key in RECURRENT_TABLE],
)
def test_entry_constructs_through_rl_zoo3(algo, key, tmp_path, monkeypatch):
    """rl-zoo3's ExperimentManager reads, preprocesses the entry and builds the model, as `train` would."""
    import torch as th

    table, algorithm = {"trpo_critic": (TABLE, TRPOCritic), "recurrent_trpo_critic": (RECURRENT_TABLE, RecurrentTRPOCritic)}[
        algo
    ]
    reason = _installed(key)
    if reason:
        pytest.skip(reason)
    env_id = {"default": "CartPole-v1", "atari": "PongNoFrameskip-v4"}.get(key, key)
    if key == "default":
        config = tmp_path / "default_only.yml"
        config.write_text(yaml.safe_dump({"default": table["default"]}))
    else:
        config = hyperparameter_file(algo)
    monkeypatch.chdir(tmp_path)
    register()
    manager = ExperimentManager(
        argparse.Namespace(),
        algo,
        env_id,
        str(tmp_path / "logs"),
        eval_freq=-1,
        seed=0,
        verbose=0,
        device="cpu",
        config=str(config),
    )
    experiment = manager.setup_experiment()
    assert experiment is not None  # (None only when rl-zoo3 optimizes hyperparameters)
    model, saved = experiment
    try:
        assert type(model) is algorithm
        assert dict(saved) == {k: v for k, v in table[key].items()}
        assert model.target_kl == table[key].get("target_kl")  # None (the constructor's default) if the entry has none
        assert model.n_envs == table[key].get("n_envs", 1)
        assert isinstance(model.get_vec_normalize_env(), VecNormalize) == bool(table[key].get("normalize", False))
        for name in ("n_steps", "batch_size", "gamma", "gae_lambda", "cg_damping", "cg_max_steps", "n_critic_updates"):
            if name in table[key]:
                assert getattr(model, name) == table[key][name], name
        if "policy_kwargs" in table[key]:
            policy_kwargs = eval(table[key]["policy_kwargs"], {"nn": th.nn})  # as rl-zoo3 evaluates it
            for name, value in policy_kwargs.items():
                assert model.policy_kwargs[name] == value, name
            if "log_std_init" in policy_kwargs:  # it reached the policy's initial action std
                assert th.allclose(model.policy.log_std, th.tensor(float(policy_kwargs["log_std_init"])))
    finally:
        env = model.get_env()
        assert env is not None
        env.close()


# --- load_zoo_hyperparameters ---------------------------------------------------------------------


def test_load_trpo_critic_v5_entry():
    hp = load_zoo_hyperparameters("trpo_critic", "HalfCheetah-v5")
    assert (hp.algo, hp.env_id, hp.entry, hp.note) == ("trpo_critic", "HalfCheetah-v5", "HalfCheetah-v5", "")
    assert hp.source == str(HYPERPARAMS_FILE)
    assert (hp.n_timesteps, hp.n_envs, hp.normalize, hp.policy) == (1_000_000, 8, True, "MlpPolicy")
    assert hp.model_kwargs["n_steps"] == 256 and hp.rule == "exact"
    assert hp.normalize_kwargs == {"gamma": 0.99}  # rl-zoo3 passes the algorithm's gamma to VecNormalize
    assert hp.model_kwargs["target_kl"] == pytest.approx(0.24)
    assert "policy" not in hp.model_kwargs and "n_timesteps" not in hp.model_kwargs and "normalize" not in hp.model_kwargs
    assert callable(hp.model_kwargs["learning_rate"]) and hp.model_kwargs["learning_rate"](1.0) == pytest.approx(1e-3)
    with pytest.raises(AttributeError):
        hp.entry = "x"  # type: ignore[misc]


def test_load_rl_zoo3_builtin_falls_back_to_v4_and_default():
    hp = load_zoo_hyperparameters("trpo", "HalfCheetah-v5")
    assert hp.entry == "HalfCheetah-v4"
    assert hp.note == "rl-zoo3 has no HalfCheetah-v5 entry for trpo; used HalfCheetah-v4"
    assert hp.source.endswith(os.path.join("rl_zoo3", "hyperparams", "trpo.yml"))
    assert hp.normalize and hp.model_kwargs["target_kl"] == 0.04

    hp = load_zoo_hyperparameters("ppo", "CartPole-v1")
    assert (hp.entry, hp.note) == ("CartPole-v1", "")
    # lin_0.001 and lin_0.2: linear schedules of the progress remaining
    learning_rate, clip_range = hp.model_kwargs["learning_rate"], hp.model_kwargs["clip_range"]
    assert (learning_rate(1.0), learning_rate(0.5)) == (pytest.approx(1e-3), pytest.approx(5e-4))
    assert (clip_range(1.0), clip_range(0.25)) == (pytest.approx(0.2), pytest.approx(0.05))

    hp = load_zoo_hyperparameters("ppo", "InvertedPendulum-v5")  # ppo.yml has only InvertedPendulum-v2
    assert hp.entry == "default" and hp.note == "rl-zoo3 has no InvertedPendulum-v5 entry for ppo; used default"
    assert not hp.normalize

    hp = load_zoo_hyperparameters("trpo_critic", "FrozenLake-v1")
    assert hp.entry == "default" and "used default" in hp.note


def test_load_evaluates_policy_kwargs_and_builds_the_model():
    hp = load_zoo_hyperparameters("trpo_critic", "Reacher-v5")
    assert isinstance(hp.model_kwargs["policy_kwargs"], dict)
    assert hp.model_kwargs["policy_kwargs"]["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}
    hp = load_zoo_hyperparameters("ppo", "Pendulum-v1")
    model = PPO(hp.policy, hp.env_id, device="cpu", **hp.model_kwargs)
    assert model.use_sde and model.n_steps == hp.model_kwargs["n_steps"]


def test_load_with_overrides_preprocesses_them_like_the_file():
    hp = load_zoo_hyperparameters("trpo_critic", "Hopper-v5", {"n_envs": 4, "policy_kwargs": "dict(log_std_init=-1)"})
    assert hp.n_envs == 4 and hp.raw["n_envs"] == 4
    assert hp.model_kwargs["policy_kwargs"] == {"log_std_init": -1}
    assert hp.model_kwargs["target_kl"] == TABLE["Hopper-v5"]["target_kl"]  # the rest of the entry is kept
    # the override did not leak into the file's own entry
    assert load_zoo_hyperparameters("trpo_critic", "Hopper-v5").model_kwargs["policy_kwargs"] == {"log_std_init": -0.5}


def test_load_errors():
    with pytest.raises(ZooError, match="not registered"):
        load_zoo_hyperparameters("trpo_critic", "NoSuchEnv-v0")
    with pytest.raises(ZooError, match="unknown algorithm"):
        load_zoo_hyperparameters("nope", "CartPole-v1")


# --- the command ----------------------------------------------------------------------------------


def _run(*args: str, cwd: Path, script: str = "module") -> subprocess.CompletedProcess[str]:
    if script == "module":
        command = [sys.executable, "-m", "sb3_trpo_critic.zoo", *args]
    else:
        command = [str(Path(sys.executable).parent / "sb3-trpo-critic"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "CI": "true"}
    env.pop("DISPLAY", None)
    return subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _train_then_enjoy(algo: str, env_id: str, tmp_path: Path, script: str = "module") -> None:
    common = ["--algo", algo, "--env", env_id, "-f", "logs", "--num-threads", "1"]
    _ok(_run("train", *common, "-n", "2048", "--eval-freq", "-1", "--seed", "1", cwd=tmp_path, script=script))
    run_folder = tmp_path / "logs" / algo / f"{env_id}_1"
    assert (run_folder / f"{env_id}.zip").is_file()
    config = yaml.load((run_folder / env_id / "config.yml").read_text(), Loader=yaml.UnsafeLoader)  # an OrderedDict
    if algo == "trpo_critic":
        assert dict(config) == TABLE[env_id]  # our file is the default
    if algo == "recurrent_trpo_critic":
        assert dict(config) == RECURRENT_TABLE[env_id]
    out = _ok(_run("enjoy", *common, "--no-render", "-n", "400", "--deterministic", cwd=tmp_path, script=script))
    rewards = [float(r) for r in re.findall(r"Episode Reward: (-?[\d.]+)", out)]
    assert rewards and all(np.isfinite(rewards)), out[-2000:]


@pytest.mark.slow
def test_train_and_enjoy_cartpole(tmp_path):
    _train_then_enjoy("trpo_critic", "CartPole-v1", tmp_path, script="console")


@pytest.mark.slow
def test_train_and_enjoy_pendulum(tmp_path):
    _train_then_enjoy("trpo_critic", "Pendulum-v1", tmp_path)


@pytest.mark.slow
def test_train_and_enjoy_recurrent_trpo_critic_on_a_velocity_masked_env(tmp_path):
    """recurrent_trpo_critic reads its own file by default; enjoy threads the LSTM state through predict()."""
    _train_then_enjoy("recurrent_trpo_critic", "CartPoleNoVel-v1", tmp_path)


@pytest.mark.slow
def test_train_and_enjoy_ppo(tmp_path):
    _train_then_enjoy("ppo", "CartPole-v1", tmp_path)


@pytest.mark.slow
def test_optimize_with_sqlite_then_train_from_a_trial(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search = ["--algo", "trpo_critic", "--env", "Pendulum-v1", "-f", "logs", "--num-threads", "1", "--seed", "3"]
    out = _ok(
        _run(
            "train",
            *search,
            "-optimize",
            "--n-trials",
            "2",
            "--n-startup-trials",
            "1",
            "--n-evaluations",
            "1",
            "--eval-episodes",
            "1",
            "-n",
            "1024",
            "--storage",
            storage,
            "--study-name",
            "pendulum",
            "--no-optim-plots",
            "--pruner",
            "none",  # with 2 trials, the median pruner may prune the second: keep both complete
            "--optimization-log-path",
            "trials",
            cwd=tmp_path,
        )
    )
    assert "Number of finished trials:  2" in out
    study = optuna.load_study(study_name="pendulum", storage=storage)
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert {"target_kl", "cg_damping", "cg_max_steps", "n_critic_updates", "net_arch"} <= set(study.trials[0].params)
    # Reload trial 1 (rl-zoo3 ignores --trial-id 0) through the converter and train with it.
    out = _ok(
        _run(
            "train",
            *search,
            "--storage",
            storage,
            "--study-name",
            "pendulum",
            "--trial-id",
            "1",
            "-n",
            "256",
            "--eval-freq",
            "-1",
            cwd=tmp_path,
        )
    )
    assert "Loading from Optuna study" in out
    (config_file,) = (tmp_path / "logs" / "trpo_critic").glob("Pendulum-v1_*/Pendulum-v1/config.yml")
    config = yaml.load(config_file.read_text(), Loader=yaml.UnsafeLoader)
    assert config["target_kl"] == pytest.approx(study.trials[1].params["target_kl"])


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown_env", r"NoSuchEnv-v0 not found in gym registry"),
        ("missing_entry", r"has no CartPole-v1 entry for trpo_critic and no 'default' entry"),
        ("malformed_yaml", r"malformed YAML in .*bad\.yml at line \d+, column \d+"),
        ("missing_file", r"hyperparameter file not found: .*absent\.yml"),
        (
            "bad_value",
            r"target_kl must be None \(0\.01 per action dimension\), a finite number > 0, or a schedule whose value "
            r"at the start \(progress remaining 1\) is one, got -1",
        ),
        ("unknown_script", r"unknown script 'trian'"),
        (
            "unknown_key_in_file",
            r"entry 'CartPole-v1' of typo\.yml .*has no hyperparameter 'targt_kl'; did you mean 'target_kl'\?",
        ),
        ("unknown_key_in_params", r"has no hyperparameter 'n_stepz'; did you mean 'n_steps'\?"),
        ("unknown_key_for_ppo", r"ppo \(PPO\) has no hyperparameter 'cg_damping'"),
        ("bad_expression", r"--hyperparams n_steps:abc: the value 'abc' of 'n_steps' is not a Python expression \(NameError"),
    ],
)
def test_bad_input_gives_one_error_line(case, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other.yml").write_text("Pendulum-v1:\n  n_timesteps: 1000\n  policy: MlpPolicy\n")
    (tmp_path / "bad.yml").write_text("CartPole-v1:\n  n_timesteps: [1000\n  policy: MlpPolicy\n")
    (tmp_path / "typo.yml").write_text("CartPole-v1:\n  n_timesteps: 1000\n  policy: MlpPolicy\n  targt_kl: 0.01\n")
    base = ["train", "--algo", "trpo_critic", "-f", str(tmp_path / "logs"), "--eval-freq", "-1", "-n", "64"]
    argv = {
        "unknown_env": [*base, "--env", "NoSuchEnv-v0"],
        "missing_entry": [*base, "--env", "CartPole-v1", "--conf-file", "other.yml"],
        "malformed_yaml": [*base, "--env", "CartPole-v1", "-conf", "bad.yml"],
        "missing_file": [*base, "--env", "CartPole-v1", "--conf-file", "absent.yml"],
        "bad_value": [*base, "--env", "CartPole-v1", "-params", "target_kl:-1"],
        "unknown_script": ["trian", "--env", "CartPole-v1"],
        "unknown_key_in_file": [*base, "--env", "CartPole-v1", "--conf-file", "typo.yml"],
        "unknown_key_in_params": [*base, "--env", "CartPole-v1", "--hyperparams", "n_stepz:64"],
        "unknown_key_for_ppo": [*base[:2], "ppo", *base[3:], "--env", "CartPole-v1", "-params", "cg_damping:0.1"],
        "bad_expression": [*base, "--env", "CartPole-v1", "--hyperparams", "n_steps:abc", "--seed", "1"],
    }[case]
    assert main(argv) == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1, err_lines
    assert re.search(expected, err_lines[0]), err_lines[0]


def test_a_bug_before_training_keeps_its_traceback(tmp_path, monkeypatch):
    """Only user errors are reported in one line: a plain ValueError or AssertionError from a bug propagates."""
    from sb3_trpo_critic.zoo.cli import ZooExperimentManager

    for error in (ValueError("a bug"), AssertionError("another bug")):

        def broken(self, error=error):
            raise error

        monkeypatch.setattr(ZooExperimentManager, "read_hyperparameters", broken)
        with pytest.raises(type(error), match="bug"):
            main(["train", "--algo", "trpo_critic", "--env", "CartPole-v1", "-f", str(tmp_path), "-n", "64"])


@pytest.mark.slow
def test_bad_input_in_a_fresh_process_has_no_traceback(tmp_path):
    result = _run("train", "--algo", "trpo_critic", "--env", "CartPole-v9", cwd=tmp_path)
    assert result.returncode == 2
    assert TRACEBACK not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "python -m sb3_trpo_critic.zoo train: error: CartPole-v9 not found in gym registry, you maybe meant CartPole-v1?"
    ]


def test_usage_and_builtin_algos(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["train", "--help"]) == 0
    help_text = capsys.readouterr().out
    for algo in ("trpo_critic", "ppo", "trpo", "sac"):
        assert algo in help_text
    assert main([]) == 2


@pytest.mark.slow
def test_wheel_ships_the_hyperparameter_file(tmp_path):
    """A plain `pip install` gets the hyperparameter file and the command, not only a checkout."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "sb3_trpo_critic", source / "sb3_trpo_critic", ignore=ignore)
    # Without setuptools in this environment (Python >= 3.12 venvs), pip builds in isolation (from PyPI).
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("sb3_trpo_critic-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "sb3_trpo_critic/hyperparams/trpo_critic.yml" in names
        assert "sb3_trpo_critic/zoo/__main__.py" in names
        assert archive.read("sb3_trpo_critic/hyperparams/trpo_critic.yml") == ROOT_FILE.read_bytes()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "sb3-trpo-critic = sb3_trpo_critic.zoo.cli:run" in archive.read(entry_points).decode()


def test_experiment_manager_defaults_and_v5_warning(tmp_path, capsys):
    from sb3_trpo_critic.zoo.cli import ZooExperimentManager

    ours = ZooExperimentManager(argparse.Namespace(), "trpo_critic", "Hopper-v5", str(tmp_path), verbose=0)
    assert ours.config == str(HYPERPARAMS_FILE)
    hyperparams, _ = ours.read_hyperparameters()
    assert hyperparams["normalize"] is True and hyperparams["target_kl"] == pytest.approx(0.03)
    custom = ZooExperimentManager(argparse.Namespace(), "trpo_critic", "Hopper-v5", str(tmp_path), config="my.yml")
    assert custom.config == "my.yml"
    assert "warning" not in capsys.readouterr().err

    # One entry rule for every algorithm, the comparison runner's: a -v5 MuJoCo env takes its -v4 entry.
    ppo = ZooExperimentManager(argparse.Namespace(), "ppo", "Hopper-v5", str(tmp_path), verbose=0)
    assert ppo.config == str(hyperparameter_file("ppo"))
    hyperparams, _ = ppo.read_hyperparameters()
    zoo_ppo = yaml.safe_load(hyperparameter_file("ppo").read_text())
    assert ppo.entry == "Hopper-v4" and load_zoo_hyperparameters("ppo", "Hopper-v5").entry == "Hopper-v4"
    assert hyperparams == {key: zoo_ppo["Hopper-v4"][key] for key in hyperparams}
    assert hyperparams["normalize"] is True and hyperparams["batch_size"] == 32
    err = capsys.readouterr().err
    assert "note: " in err and "has no Hopper-v5 entry for ppo; used Hopper-v4" in err


def test_a_linear_target_kl_schedule_in_a_zoo_entry():
    """`target_kl: lin_0.03` becomes a linear schedule, as rl-zoo3 does for learning_rate; a bad string is a ZooError."""
    zoo = load_zoo_hyperparameters("trpo_critic", "Pendulum-v1", {"target_kl": "lin_0.03"})
    schedule = zoo.model_kwargs["target_kl"]
    assert (schedule(1.0), schedule(0.5)) == (pytest.approx(0.03), pytest.approx(0.015))
    assert isinstance(load_zoo_hyperparameters("trpo_critic", "Pendulum-v1").model_kwargs["target_kl"], float)
    with pytest.raises(ZooError, match="target_kl must be a number or a linear schedule"):
        load_zoo_hyperparameters("trpo_critic", "Pendulum-v1", {"target_kl": "exp_0.03"})
