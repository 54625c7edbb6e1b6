"""
Continued training through the zoo: `sb3-trpo-critic train --trained-agent <zip>` goes on from the saved actor, critic,
critic optimizer state and VecNormalize statistics, and the log's n_updates and timesteps go on.
"""

from __future__ import annotations

import copy
import csv
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch as th
import yaml

pytest.importorskip("rl_zoo3")

from stable_baselines3.common import utils as sb3_utils
from stable_baselines3.common.logger import CSVOutputFormat
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import RecurrentTRPOCritic, TRPOCritic
from sb3_trpo_critic.zoo.cli import main

N_ENVS, N_STEPS = 2, 64
ROLLOUT = N_ENVS * N_STEPS
# Tiny entries with VecNormalize: 2 envs x 64 steps per update.
ENTRIES: dict[str, tuple[str, dict[str, Any], type[TRPOCritic]]] = {
    "trpo_critic": (
        "Pendulum-v1",
        {"policy": "MlpPolicy", "n_critic_updates": 2, "target_kl": 0.02},
        TRPOCritic,
    ),
    "recurrent_trpo_critic": (
        "CartPoleNoVel-v1",
        {
            "policy": "MlpLstmPolicy",
            "n_critic_updates": 2,
            "policy_kwargs": "dict(lstm_hidden_size=16, enable_critic_lstm=True, net_arch=dict(pi=[16], vf=[16]))",
        },
        RecurrentTRPOCritic,
    ),
}


def _snapshot(model: TRPOCritic) -> dict[str, Any]:
    """The state an update starts from: the parameters, the critic optimizer's state, the statistics, the counts."""
    vec_normalize = model.get_vec_normalize_env()
    assert vec_normalize is not None
    return {
        "policy": {key: value.detach().clone() for key, value in model.policy.state_dict().items()},
        "optimizer": copy.deepcopy(model.policy.optimizer.state_dict()),
        "obs_rms": copy.deepcopy(vec_normalize.obs_rms),
        "ret_rms": copy.deepcopy(vec_normalize.ret_rms),
        "n_updates": model._n_updates,
        "num_timesteps": model.num_timesteps,
    }


def _same_optimizer_state(first: dict[str, Any], second: dict[str, Any]) -> bool:
    if (
        first["param_groups"][0]["params"] != second["param_groups"][0]["params"]
        or first["state"].keys() != second["state"].keys()
    ):
        return False
    return all(
        th.equal(th.as_tensor(first["state"][index][name]).cpu(), th.as_tensor(second["state"][index][name]).cpu())
        for index in first["state"]
        for name in first["state"][index]
    )


def _log(folder: Path) -> list[dict[str, str]]:
    with open(folder / "progress.csv", newline="") as file:
        return list(csv.DictReader(file))


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(row[key]) if row.get(key) not in (None, "") else math.nan for row in rows]


@pytest.mark.parametrize("algo", list(ENTRIES))
def test_continued_training_goes_on_from_the_saved_agent(algo, tmp_path, monkeypatch):
    env_id, entry, algorithm = ENTRIES[algo]
    monkeypatch.chdir(tmp_path)
    entry = {**entry, "n_timesteps": 2 * ROLLOUT, "n_envs": N_ENVS, "n_steps": N_STEPS, "batch_size": 64, "normalize": True}
    Path("conf.yml").write_text(yaml.safe_dump({env_id: entry}))

    # The log: SB3's, with a CSV file per training (logs/run<k>/progress.csv).
    logs: list[Path] = []
    configure_logger = sb3_utils.configure_logger

    def configure_with_csv(*args: Any, **kwargs: Any) -> Any:
        logger = configure_logger(*args, **kwargs)
        logs.append(tmp_path / f"run{len(logs) + 1}")
        logs[-1].mkdir()
        logger.output_formats.append(CSVOutputFormat(str(logs[-1] / "progress.csv")))
        return logger

    monkeypatch.setattr(sb3_utils, "configure_logger", configure_with_csv)
    # What each learn() and each update starts from.
    at_learn: list[dict[str, Any]] = []
    at_update: list[dict[str, Any]] = []
    after_update: list[dict[str, Any]] = []
    learn, train = algorithm.learn, algorithm.train

    def recorded_learn(self: TRPOCritic, *args: Any, **kwargs: Any) -> Any:
        at_learn.append(_snapshot(self))
        return learn(self, *args, **kwargs)

    def recorded_train(self: TRPOCritic) -> None:
        at_update.append(_snapshot(self))
        train(self)
        after_update.append(_snapshot(self))

    monkeypatch.setattr(algorithm, "learn", recorded_learn)
    monkeypatch.setattr(algorithm, "train", recorded_train)

    common = [
        "--algo",
        algo,
        "--env",
        env_id,
        "-f",
        "logs",
        "--conf-file",
        "conf.yml",
        "--eval-freq",
        "-1",
        "--num-threads",
        "1",
    ]
    assert main(["train", *common, "--seed", "1"]) == 0
    first_run = tmp_path / "logs" / algo / f"{env_id}_1"
    saved_zip = first_run / f"{env_id}.zip"
    saved = algorithm.load(saved_zip, device="cpu")
    with open(first_run / env_id / "vecnormalize.pkl", "rb") as file:
        saved_stats: VecNormalize = pickle.load(file)
    assert (saved._n_updates, saved.num_timesteps) == (2, 2 * ROLLOUT)
    updates_of_first_run = len(at_update)
    assert updates_of_first_run == 2
    end = after_update[-1]  # where the first training stopped
    assert end["optimizer"]["state"], "the critic optimizer has taken steps: it has a state to restore"
    for name in ("mean", "var", "count"):
        assert getattr(end["obs_rms"], name) == pytest.approx(getattr(saved_stats.obs_rms, name), rel=0, abs=0), name

    assert main(["train", *common, "--seed", "2", "--trained-agent", str(saved_zip)]) == 0

    # Before the first rollout: the saved statistics, unchanged.
    start = at_learn[-1]
    for name in ("mean", "var", "count"):
        assert getattr(start["obs_rms"], name) == pytest.approx(getattr(saved_stats.obs_rms, name), rel=0, abs=0), name
    assert start["ret_rms"].count == saved_stats.ret_rms.count
    # The first update after continuing: the actor, critic and critic optimizer state where the first training
    # stopped, its statistics with one rollout more, and the counts going on.
    first = at_update[updates_of_first_run]
    assert first["policy"].keys() == end["policy"].keys()
    for key, value in end["policy"].items():
        assert th.equal(first["policy"][key], value), key
    assert _same_optimizer_state(first["optimizer"], end["optimizer"])
    # (the reset at the start of learn() adds one observation per environment, then the rollout's)
    assert isinstance(saved_stats.obs_rms, RunningMeanStd)
    assert first["obs_rms"].count == pytest.approx(saved_stats.obs_rms.count + N_ENVS + ROLLOUT)
    assert first["n_updates"] == saved._n_updates
    assert first["num_timesteps"] == saved.num_timesteps + ROLLOUT
    # ... and the critic's next Adam step counts on from the saved one.
    second = at_update[updates_of_first_run + 1]
    steps = {float(state["step"]) for state in second["optimizer"]["state"].values()}
    saved_steps = {float(state["step"]) for state in end["optimizer"]["state"].values()}
    assert min(steps) > max(saved_steps)

    # The log goes on: timesteps from the saved count, n_updates from the saved number.
    first_log, continued_log = _log(logs[0]), _log(logs[1])
    assert _column(first_log, "time/total_timesteps") == [ROLLOUT, 2 * ROLLOUT]
    assert _column(continued_log, "time/total_timesteps") == [3 * ROLLOUT, 4 * ROLLOUT]
    assert _column(first_log, "train/n_updates")[1:] == [1]
    assert _column(continued_log, "train/n_updates")[1:] == [3]
    continued = algorithm.load(tmp_path / "logs" / algo / f"{env_id}_2" / f"{env_id}.zip", device="cpu")
    assert (continued._n_updates, continued.num_timesteps) == (4, 4 * ROLLOUT)


def test_continuing_without_the_statistics_warns(tmp_path, monkeypatch, capsys):
    """A normalized training continued from an agent whose vecnormalize.pkl is not beside it starts new statistics."""
    env_id, entry, algorithm = ENTRIES["trpo_critic"]
    monkeypatch.chdir(tmp_path)
    entry = {**entry, "n_timesteps": ROLLOUT, "n_envs": N_ENVS, "n_steps": N_STEPS, "batch_size": 64, "normalize": True}
    Path("conf.yml").write_text(yaml.safe_dump({env_id: entry}))
    common = ["--algo", "trpo_critic", "--env", env_id, "-f", "logs", "--conf-file", "conf.yml", "--eval-freq", "-1"]
    assert main(["train", *common]) == 0
    (run,) = (tmp_path / "logs" / "trpo_critic").iterdir()
    (tmp_path / "elsewhere").mkdir()
    moved = (run / f"{env_id}.zip").rename(tmp_path / "elsewhere" / "agent.zip")
    capsys.readouterr()
    assert main(["train", *common, "--trained-agent", str(moved)]) == 0
    err = capsys.readouterr().err
    assert f"warning: continuing {moved} with new VecNormalize statistics" in err
    assert (
        algorithm.load(sorted((tmp_path / "logs" / "trpo_critic").glob("*/*.zip"))[-1], device="cpu").num_timesteps
        == 2 * ROLLOUT
    )
