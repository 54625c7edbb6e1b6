"""The examples shown in the README and the docs run, at tiny budgets."""

import math
import runpy
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_quickstart(capsys):
    namespace = runpy.run_path(str(EXAMPLES / "quickstart.py"))
    mean_return = namespace["main"](["--timesteps", "2048", "--eval-episodes", "2"])
    assert math.isfinite(mean_return)
    assert "Pendulum-v1: mean return" in capsys.readouterr().out


def test_recurrent_memory(capsys):
    namespace = runpy.run_path(str(EXAMPLES / "recurrent_memory.py"))
    results = namespace["main"](["--timesteps", "2048", "--eval-episodes", "2"])
    assert set(results) == {"RecurrentTRPOCritic", "TRPOCritic (no memory)"}
    assert all(math.isfinite(value) and value >= 8 for value in results.values())  # CartPole lasts >= 8 steps
    assert "RecurrentTRPOCritic: mean return" in capsys.readouterr().out
