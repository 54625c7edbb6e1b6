"""The examples shown in the README and the docs run, at tiny budgets: every file of ``examples/`` is run here."""

import math
import re
import runpy
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, argv: list[str]) -> Any:
    """Run ``main(argv)`` of ``examples/<name>``, as ``python examples/<name> ARGV`` does; its return value."""
    return runpy.run_path(str(EXAMPLES / name))["main"](argv)


def test_every_example_is_run_here():
    run_here = set(re.findall(r'run_example\("(\w+\.py)"', Path(__file__).read_text()))
    assert run_here == {path.name for path in EXAMPLES.glob("*.py")}


def test_quickstart(capsys):
    mean_return = run_example("quickstart.py", ["--timesteps", "2048", "--eval-episodes", "2"])
    assert math.isfinite(mean_return)
    assert "Pendulum-v1: mean return" in capsys.readouterr().out


def test_recurrent_memory(capsys):
    results = run_example("recurrent_memory.py", ["--timesteps", "2048", "--eval-episodes", "2"])
    assert set(results) == {"RecurrentTRPOCritic", "TRPOCritic (no memory)"}
    assert all(math.isfinite(value) and value >= 8 for value in results.values())  # CartPole lasts >= 8 steps
    assert "RecurrentTRPOCritic: mean return" in capsys.readouterr().out


def test_custom_policy(capsys):
    mean_return = run_example("custom_policy.py", ["--timesteps", "1024", "--eval-episodes", "1"])
    assert math.isfinite(mean_return)
    out = capsys.readouterr().out
    assert "shared extractor: its 4 parameter tensors belong to the actor" in out
    assert "actor parameters:" in out and "Pendulum-v1: mean return" in out


def test_tensorboard_logging(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason='TensorBoard is not installed: pip install -e ".[docs]"')
    log_dir = tmp_path / "tb"
    summary = run_example("tensorboard_logging.py", ["--timesteps", "4096", "--log-dir", str(log_dir)])
    assert summary["updates"] >= 1
    assert 0.0 <= summary["accepted_fraction"] <= 1.0
    if summary["accepted_fraction"] > 0:
        assert 0.0 < summary["mean_kl_over_target"] <= 1.0  # accepted steps stay inside the trust region
    assert list(log_dir.glob("events.out.tfevents.*"))
    assert "tensorboard --logdir" in capsys.readouterr().out


def test_from_sb3_contrib(capsys):
    pytest.importorskip("sb3_contrib")
    pytest.importorskip("mujoco", reason='MuJoCo is not installed: pip install -e ".[mujoco]"')
    mean_return = run_example("from_sb3_contrib.py", ["--timesteps", "2048", "--eval-episodes", "1"])
    assert math.isfinite(mean_return)
    out = capsys.readouterr().out
    assert "TRPOCritic:       target_kl=0.24, cg_damping=0.1" in out
