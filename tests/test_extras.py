"""
A missing extra is one line naming it (`pip install "sb3-trpo-critic[zoo]"`) and exit status 2, never a
ModuleNotFoundError traceback; `import sb3_trpo_critic` needs no extra.

The extras' modules are hidden (``sys.modules[name] = None``, as if not installed): in this process for
``sb3_trpo_critic.zoo.cli.main``, and in fresh processes (a ``sitecustomize`` that hides them at start-up) for the
commands as users run them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from sb3_trpo_critic.extras import (
    EXTRA_MODULES,
    MissingExtraError,
    as_missing_extra,
    environment_dependency_message,
    install_command,
    requires_extra,
)

ROOT = Path(__file__).resolve().parent.parent
TRACEBACK = "Traceback (most recent call last)"


def _line(extra: str, module: str, command: str = "this command") -> str:
    return f"{command} needs the '{extra}' extra ({module} is not installed): pip install \"sb3-trpo-critic[{extra}]\""


# --- in this process ------------------------------------------------------------------------------


def test_install_command():
    assert install_command("zoo") == 'pip install "sb3-trpo-critic[zoo]"'
    assert install_command("zoo", "mujoco") == 'pip install "sb3-trpo-critic[zoo,mujoco]"'


@pytest.mark.parametrize(
    ("module", "preferred", "extra"),
    [
        ("rl_zoo3", "zoo", "zoo"),
        ("rl_zoo3", "benchmarks", "benchmarks"),  # in both: the one the caller needs
        ("rl_zoo3.utils", None, "zoo"),
        ("rliable", "benchmarks", "benchmarks"),
        ("ray", "zoo", "benchmarks"),  # only the benchmarks extra has it
        ("mujoco", "zoo", "mujoco"),
        ("Box2D", None, "box2d"),
        ("no_such_module", "zoo", None),  # not an extra's: a bug, left as it is
    ],
)
def test_which_extra_a_missing_module_is(module, preferred, extra):
    missing = as_missing_extra(ModuleNotFoundError(f"No module named {module!r}", name=module), "it", preferred=preferred)
    if extra is None:
        assert missing is None
        return
    assert missing is not None and missing.extra == extra
    assert str(missing) == _line(extra, module.partition(".")[0], "it")


def test_a_missing_extra_error_is_renamed_for_the_extra_the_caller_needs():
    zoo = MissingExtraError("zoo", "rl_zoo3", "sb3_trpo_critic.zoo.load_zoo_hyperparameters")
    assert as_missing_extra(zoo, "it", preferred="zoo") is zoo
    renamed = as_missing_extra(zoo, "it", preferred="benchmarks")
    assert renamed is not None and renamed.extra == "benchmarks" and renamed.name == "rl_zoo3"


def test_requires_extra_raises_when_imported_and_exits_when_run(capsys):
    zoo_missing = r"^some\.module needs the 'zoo' extra \(rl_zoo3 is not installed\)"
    with pytest.raises(MissingExtraError, match=zoo_missing), requires_extra("zoo", "some.module"):
        raise ModuleNotFoundError("No module named 'rl_zoo3'", name="rl_zoo3")
    with pytest.raises(SystemExit) as exit_info, requires_extra("benchmarks", "__main__"):
        raise ModuleNotFoundError("No module named 'rliable'", name="rliable")
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(": error: " + _line("benchmarks", "rliable"))
    with pytest.raises(ModuleNotFoundError, match="no_such_module"), requires_extra("zoo", "__main__"):
        raise ModuleNotFoundError("No module named 'no_such_module'", name="no_such_module")  # a bug: unchanged


def test_requires_extra_looks_for_the_modules_first(monkeypatch):
    monkeypatch.setitem(sys.modules, "rliable", None)
    expected = r"'benchmarks' extra \(rliable is not installed\)"
    with pytest.raises(MissingExtraError, match=expected), requires_extra("benchmarks", "some.module", "rl_zoo3", "rliable"):
        pytest.fail("not entered")


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (
            "mujoco",
            "Hopper-v5 needs MuJoCo, which is not installed (the 'mujoco' extra): pip install \"sb3-trpo-critic[mujoco]\"",
        ),
        ("Box2D", "Hopper-v5 needs Box2D, which is not installed (the 'box2d' extra): pip install \"sb3-trpo-critic[box2d]\""),
        ("pygame", None),  # gymnasium's own extra (rendering): its message is kept
    ],
)
def test_environment_dependencies_name_the_extra(module, expected):
    try:
        try:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        except ImportError as cause:
            raise gym.error.DependencyNotInstalled(f"{module} is not installed") from cause
    except gym.error.DependencyNotInstalled as error:
        assert environment_dependency_message(error, "Hopper-v5") == expected
    assert environment_dependency_message(ValueError("mujoco"), "Hopper-v5") is None


@pytest.mark.parametrize("hidden", ["rl_zoo3", "optuna", "yaml"])
def test_the_command_without_the_zoo_extra(hidden, monkeypatch, capsys):
    pytest.importorskip("rl_zoo3")
    from sb3_trpo_critic.zoo.cli import main

    monkeypatch.setitem(sys.modules, hidden, None)
    monkeypatch.setattr(sys, "argv", ["sb3-trpo-critic"])
    assert main(["train", "--algo", "trpo_critic", "--env", "CartPole-v1"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"sb3-trpo-critic: error: {_line('zoo', hidden)}"]


def _forget_gymnasium_mujoco(monkeypatch):
    """
    Forget gymnasium's MuJoCo modules, the package included: an earlier test may have imported them, and its cached
    ``MujocoEnv`` would let ``hopper_v5`` import ``mujoco`` itself (a bare ImportError) instead of through
    ``mujoco_env``, which turns it into gymnasium's DependencyNotInstalled.
    """
    for name in [name for name in sys.modules if name == "gymnasium.envs.mujoco" or name.startswith("gymnasium.envs.mujoco.")]:
        monkeypatch.delitem(sys.modules, name)


def test_a_missing_environment_dependency_through_the_command(monkeypatch, capsys, tmp_path):
    """gymnasium's DependencyNotInstalled (here: MuJoCo's modules hidden and forgotten) names this package's extra."""
    pytest.importorskip("rl_zoo3")
    from sb3_trpo_critic.zoo.cli import main

    monkeypatch.setitem(sys.modules, "mujoco", None)
    _forget_gymnasium_mujoco(monkeypatch)
    monkeypatch.setattr(sys, "argv", ["sb3-trpo-critic"])
    argv = ["train", "--algo", "trpo_critic", "--env", "Hopper-v5", "-n", "64", "-f", str(tmp_path), "--eval-freq", "-1"]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        "sb3-trpo-critic train: error: Hopper-v5 needs MuJoCo, which is not installed (the 'mujoco' extra): "
        'pip install "sb3-trpo-critic[mujoco]"'
    ]


def test_a_missing_environment_dependency_in_the_comparison_runner(monkeypatch):
    """The runner's environments (make_zoo_vec_env): gymnasium's error, with this package's extra in its message."""
    pytest.importorskip("rl_zoo3")
    from sb3_trpo_critic.zoo import load_zoo_hyperparameters, make_zoo_vec_env

    zoo = load_zoo_hyperparameters("trpo_critic", "Hopper-v5")
    monkeypatch.setitem(sys.modules, "mujoco", None)
    _forget_gymnasium_mujoco(monkeypatch)
    with pytest.raises(gym.error.DependencyNotInstalled) as error:
        make_zoo_vec_env(zoo, seed=0)
    assert str(error.value) == (
        "Hopper-v5 needs MuJoCo, which is not installed (the 'mujoco' extra): pip install \"sb3-trpo-critic[mujoco]\""
    )


# --- fresh processes --------------------------------------------------------------------------------


@pytest.fixture
def hiding(tmp_path) -> Path:
    """A folder with a sitecustomize that hides the modules named in HIDDEN_MODULES at interpreter start-up."""
    folder = tmp_path / "hide"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import os, sys\n"
        "for name in filter(None, os.environ.get('HIDDEN_MODULES', '').split(',')):\n"
        "    sys.modules[name] = None\n"
    )
    return folder


def _run_hidden(hiding: Path, hidden: list[str], command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hiding), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "HIDDEN_MODULES": ",".join(hidden),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    return subprocess.run(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)


CONSOLE = str(Path(sys.executable).parent / "sb3-trpo-critic")
PYTHON_M = [sys.executable, "-m"]
COMMANDS = {
    # (modules hidden, command line, the line on stderr)
    "console_no_rl_zoo3": (
        ["rl_zoo3"],
        [CONSOLE, "train", "--algo", "trpo_critic", "--env", "CartPole-v1"],
        f"sb3-trpo-critic: error: {_line('zoo', 'rl_zoo3')}",
    ),
    "module_no_rl_zoo3": (
        ["rl_zoo3"],
        [*PYTHON_M, "sb3_trpo_critic.zoo", "train", "--env", "CartPole-v1"],
        f"python -m sb3_trpo_critic.zoo: error: {_line('zoo', 'rl_zoo3')}",
    ),
    "console_no_optuna": (
        ["optuna"],
        [CONSOLE, "enjoy", "--algo", "trpo_critic", "--env", "CartPole-v1"],
        f"sb3-trpo-critic: error: {_line('zoo', 'optuna')}",
    ),
    "console_no_hub_client": (
        ["huggingface_sb3"],
        [CONSOLE, "push_to_hub", "--help"],
        f"sb3-trpo-critic: error: {_line('zoo', 'huggingface_sb3')}",
    ),
    "plots_no_seaborn": (
        ["seaborn"],
        [CONSOLE, "plot_train", "--algo", "ppo", "--env", "CartPole-v1", "-f", "logs"],
        f"sb3-trpo-critic plot_train: error: {_line('zoo', 'seaborn', 'this script')}",
    ),
    "compare_no_rl_zoo3": (
        ["rl_zoo3"],
        [*PYTHON_M, "sb3_trpo_critic.benchmarks.compare", "--envs", "CartPole-v1", "--out", "out"],
        f"python -m sb3_trpo_critic.benchmarks.compare: error: {_line('benchmarks', 'rl_zoo3')}",
    ),
    "compare_report_no_rliable": (
        ["rliable"],
        [*PYTHON_M, "sb3_trpo_critic.benchmarks.compare", "report", "results", "--out", "report"],
        f"python -m sb3_trpo_critic.benchmarks.compare: error: {_line('benchmarks', 'rliable')}",
    ),
    "compare_no_ray": (
        ["ray"],
        [
            *PYTHON_M,
            "sb3_trpo_critic.benchmarks.compare",
            "--envs",
            "CartPole-v1",
            "--algos",
            "ppo",
            "--seeds",
            "1",
            "--timesteps",
            "64",
            "--backend",
            "ray",
            "--out",
            "out",
        ],
        f"python -m sb3_trpo_critic.benchmarks.compare: error: {_line('benchmarks', 'ray')}",
    ),
    "throughput_no_rl_zoo3": (
        ["rl_zoo3"],
        [*PYTHON_M, "sb3_trpo_critic.benchmarks.throughput", "--help"],
        f"python -m sb3_trpo_critic.benchmarks.throughput: error: {_line('benchmarks', 'rl_zoo3')}",
    ),
    "update_cost_no_rl_zoo3": (
        ["rl_zoo3"],
        [*PYTHON_M, "sb3_trpo_critic.benchmarks.update_cost", "--help"],
        f"python -m sb3_trpo_critic.benchmarks.update_cost: error: {_line('benchmarks', 'rl_zoo3')}",
    ),
    "train_no_mujoco": (
        ["mujoco"],
        [CONSOLE, "train", "--algo", "trpo_critic", "--env", "Hopper-v5", "-n", "64", "-f", "logs"],
        "sb3-trpo-critic train: error: Hopper-v5 needs MuJoCo, which is not installed (the 'mujoco' extra): "
        'pip install "sb3-trpo-critic[mujoco]"',
    ),
    "train_no_box2d": (
        ["Box2D"],
        [CONSOLE, "train", "--algo", "trpo_critic", "--env", "LunarLander-v3", "-n", "64", "-f", "logs"],
        "sb3-trpo-critic train: error: LunarLander-v3 needs Box2D, which is not installed (the 'box2d' extra): "
        'pip install "sb3-trpo-critic[box2d]"',
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(COMMANDS))
def test_a_command_without_its_extra_says_which_to_install(case, hiding, tmp_path):
    pytest.importorskip("rl_zoo3")
    hidden, command, expected = COMMANDS[case]
    if "report" in command:
        shutil.copytree(ROOT / "tests" / "data" / "version_2", tmp_path / "results")
    result = _run_hidden(hiding, hidden, command, tmp_path)
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert TRACEBACK not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("runs:")]
    assert lines[-1:] == [expected], result.stderr[-3000:]
    assert len(lines) == 1, lines


@pytest.mark.slow
def test_the_package_imports_and_trains_without_any_extra(hiding, tmp_path):
    hidden = sorted({module for modules in EXTRA_MODULES.values() for module in modules})
    script = """
import sb3_trpo_critic
from sb3_trpo_critic import RecurrentTRPOCritic, TRPOCritic
from sb3_trpo_critic.extras import MissingExtraError

model = TRPOCritic("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_critic_updates=1, device="cpu").learn(64)
assert model.num_timesteps == 64
import sb3_trpo_critic.zoo  # the package imports; its names say what to install
try:
    from sb3_trpo_critic.zoo import load_zoo_hyperparameters
except MissingExtraError as error:
    print("zoo:", error)
try:
    import sb3_trpo_critic.benchmarks.compare
except MissingExtraError as error:
    print("benchmarks:", error)
"""
    result = _run_hidden(hiding, hidden, [sys.executable, "-c", script], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    zoo, benchmarks = result.stdout.splitlines()
    assert zoo == f"zoo: {_line('zoo', 'rl_zoo3', 'sb3_trpo_critic.zoo.load_zoo_hyperparameters')}"
    match = re.fullmatch(r"benchmarks: (.*)", benchmarks)
    assert match, benchmarks
    module = next(module for module in EXTRA_MODULES["benchmarks"] if f"({module} is not installed)" in benchmarks)
    assert match.group(1) == _line("benchmarks", module, "sb3_trpo_critic.benchmarks.compare")
