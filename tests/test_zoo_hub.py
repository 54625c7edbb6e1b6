"""
`sb3-trpo-critic push_to_hub` and `load_from_hub`: rl-zoo3's hub scripts with TRPOCritic registered.

The Hub is replaced at the network boundary only: the Hugging Face client's calls that rl-zoo3 makes
(`HfApi.create_repo`, `HfApi.snapshot_download`, `HfApi.upload_folder`, `huggingface_hub.hf_hub_download`) read and
write a local folder; everything between them and the command line is rl-zoo3's and this package's code.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
import yaml

pytest.importorskip("rl_zoo3")
pytest.importorskip("huggingface_hub")

import httpx2
import huggingface_hub
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from sb3_trpo_critic import RecurrentTRPOCritic, TRPOCritic
from sb3_trpo_critic.zoo import hub
from sb3_trpo_critic.zoo.cli import main

ORGANIZATION = "someone"

# Tiny entries: 2 envs x 64 steps per update, 256 steps (2 updates).
PENDULUM = {
    "Pendulum-v1": {
        "n_timesteps": 256,
        "policy": "MlpPolicy",
        "n_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_critic_updates": 2,
        "target_kl": 0.02,
        "normalize": True,
    }
}
CARTPOLE_NO_VEL = {
    "CartPoleNoVel-v1": {
        "n_timesteps": 256,
        "policy": "MlpLstmPolicy",
        "n_envs": 2,
        "n_steps": 64,
        "batch_size": 64,
        "n_critic_updates": 2,
        "policy_kwargs": "dict(lstm_hidden_size=16, net_arch=dict(pi=[16], vf=[16]))",
    }
}
CASES = {
    "trpo_critic": ("Pendulum-v1", PENDULUM, TRPOCritic),
    "recurrent_trpo_critic": ("CartPoleNoVel-v1", CARTPOLE_NO_VEL, RecurrentTRPOCritic),
}


class LocalHub:
    """The Hub's repositories as folders under ``root``: ``root/<organization>/<name>/<files>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.calls: list[tuple[str, str]] = []

    def _response(self, repo_id: str, filename: str = "") -> httpx2.Response:
        url = f"https://huggingface.co/{repo_id}/resolve/main/{filename}"
        return httpx2.Response(404, request=httpx2.Request("GET", url))

    # (set on the HfApi class, these bound methods are called without the HfApi instance)

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(("create_repo", repo_id))
        (self.root / repo_id).mkdir(parents=True, exist_ok=kwargs.get("exist_ok", False))
        return f"https://huggingface.co/{repo_id}"

    def snapshot_download(self, repo_id: str, *, local_dir: str | Path, **kwargs: Any) -> str:
        self.calls.append(("snapshot_download", repo_id))
        shutil.copytree(self.root / repo_id, local_dir, dirs_exist_ok=True)
        return str(local_dir)

    def upload_folder(self, *, repo_id: str, folder_path: str | Path, **kwargs: Any) -> str:
        self.calls.append(("upload_folder", repo_id))
        shutil.copytree(folder_path, self.root / repo_id, dirs_exist_ok=True)
        return f"https://huggingface.co/{repo_id}/commit/local"

    def hf_hub_download(self, repo_id: str, filename: str, **kwargs: Any) -> str:
        self.calls.append(("hf_hub_download", f"{repo_id}/{filename}"))
        if not (self.root / repo_id).is_dir():
            raise RepositoryNotFoundError(
                f"404 Client Error. Repository Not Found for url: {repo_id}", response=self._response(repo_id)
            )
        path = self.root / repo_id / filename
        if not path.is_file():
            raise RemoteEntryNotFoundError(
                f"404 Client Error. Entry Not Found: {filename}", response=self._response(repo_id, filename)
            )
        return str(path)


@pytest.fixture
def local_hub(tmp_path, monkeypatch) -> LocalHub:
    """The Hub, as a local folder; any other request to the Hub fails (offline mode)."""
    fake = LocalHub(tmp_path / "remote")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake.create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "snapshot_download", fake.snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake.upload_folder)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.hf_hub_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("TRUST_REMOTE_CODE", "True")
    monkeypatch.chdir(tmp_path)
    return fake


def _train(algo: str, env_id: str, table: dict, folder: str = "logs") -> Path:
    Path("conf.yml").write_text(yaml.safe_dump(table))
    common = ["--algo", algo, "--env", env_id, "-f", folder, "--num-threads", "1", "--conf-file", "conf.yml"]
    assert main(["train", *common, "--eval-freq", "-1", "--seed", "1"]) == 0
    return Path(folder) / algo / f"{env_id}_1"


def _state(path: Path, algorithm: type[TRPOCritic]) -> dict[str, th.Tensor]:
    return algorithm.load(path, device="cpu").policy.state_dict()


def _obs_rms(path: Path) -> RunningMeanStd:
    """The observation statistics of a saved VecNormalize."""
    with open(path, "rb") as file:
        stats = pickle.load(file)
    assert isinstance(stats, VecNormalize) and isinstance(stats.obs_rms, RunningMeanStd)
    return stats.obs_rms


def _front_matter(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert match, card[:500]
    return yaml.safe_load(match.group(1))


def test_the_hub_scripts_know_this_packages_algorithms(capsys):
    for script in ("push_to_hub", "load_from_hub"):
        assert main([script, "--help"]) == 0
        help_text = capsys.readouterr().out
        choices = re.search(r"--algo \{([^}]*)\}", help_text)
        assert choices, help_text
        assert {"trpo_critic", "recurrent_trpo_critic", "ppo", "trpo"} <= set(choices.group(1).split(","))
        assert "-orga" in help_text  # rl-zoo3's flags, unchanged


@pytest.mark.parametrize("algo", list(CASES))
def test_push_load_and_enjoy(algo, local_hub, capsys):
    env_id, table, algorithm = CASES[algo]
    normalized = bool(table[env_id].get("normalize"))
    run = _train(algo, env_id, table)
    capsys.readouterr()

    argv = ["--algo", algo, "--env", env_id, "-f", "logs", "-orga", ORGANIZATION, "--no-render", "--num-threads", "1"]
    assert main(["push_to_hub", *argv]) == 0
    repo = local_hub.root / ORGANIZATION / f"{algo}-{env_id}"  # rl-zoo3's name: {organization}/{algo}-{env}
    assert ("upload_folder", f"{ORGANIZATION}/{algo}-{env_id}") in local_hub.calls
    files = {str(path.relative_to(repo)) for path in repo.rglob("*") if path.is_file()}
    expected = {
        ".gitattributes",
        f"{algo}-{env_id}.zip",  # the model, and its unzipped folder
        f"{algo}-{env_id}/data",
        f"{algo}-{env_id}/policy.pth",
        f"{algo}-{env_id}/policy.optimizer.pth",
        f"{algo}-{env_id}/pytorch_variables.pth",
        f"{algo}-{env_id}/_stable_baselines3_version",
        f"{algo}-{env_id}/system_info.txt",
        "config.yml",
        "args.yml",
        "env_kwargs.yml",
        "train_eval_metrics.zip",
        "results.json",
        "README.md",
    }
    assert files == expected | ({"vec_normalize.pkl"} if normalized else set())

    # The pushed model is the trained one; the statistics and the config are the training's.
    trained, pushed = _state(run / f"{env_id}.zip", algorithm), _state(repo / f"{algo}-{env_id}.zip", algorithm)
    assert trained.keys() == pushed.keys() and all(th.equal(trained[key], pushed[key]) for key in trained)
    assert (repo / "config.yml").read_text() == (run / env_id / "config.yml").read_text()
    if normalized:
        training_stats, pushed_stats = _obs_rms(run / env_id / "vecnormalize.pkl"), _obs_rms(repo / "vec_normalize.pkl")
        assert training_stats.count > 0
        assert np.array_equal(training_stats.mean, pushed_stats.mean)
        assert np.array_equal(training_stats.var, pushed_stats.var)
        assert pushed_stats.count == training_stats.count
    with zipfile.ZipFile(repo / "train_eval_metrics.zip") as archive:
        assert {"0.monitor.csv", "1.monitor.csv"} <= set(archive.namelist())
    results = json.loads((repo / "results.json").read_text())
    assert results["n_eval_episodes"] == 10 and np.isfinite(results["mean_reward"])

    # The model card: TRPOCritic and sb3-trpo-critic beside stable-baselines3, the install line, our commands.
    card = (repo / "README.md").read_text()
    metadata = _front_matter(card)
    assert {"stable-baselines3", "sb3-trpo-critic", env_id} <= set(metadata["tags"])
    assert metadata["library_name"] == "stable-baselines3"
    (model_index,) = metadata["model-index"]
    assert model_index["name"] == algorithm.__name__
    assert model_index["results"][0]["metrics"][0]["value"] == f"{results['mean_reward']:.2f} +/- {results['std_reward']:.2f}"
    assert f"# **{algorithm.__name__}** Agent playing **{env_id}**" in card
    assert "stable-baselines3 library" in card and "[sb3-trpo-critic](" in card
    assert 'pip install "sb3-trpo-critic[zoo]"' in card
    assert f"sb3-trpo-critic load_from_hub --algo {algo} --env {env_id} -orga {ORGANIZATION} -f logs/" in card
    assert f"sb3-trpo-critic enjoy --algo {algo} --env {env_id} -f logs/" in card
    assert f"sb3-trpo-critic push_to_hub --algo {algo} --env {env_id} -f logs/ -orga {ORGANIZATION}" in card
    assert f"from sb3_trpo_critic import {algorithm.__name__}" in card
    assert not re.search(r"^python -m rl_zoo3", card, re.MULTILINE)  # rl-zoo3's scripts do not know the algorithm
    assert ("vec_normalize.pkl" in card) == normalized
    hyperparameters = card.split("## Hyperparameters", 1)[1]
    for key, value in table[env_id].items():
        assert repr(key) in hyperparameters and repr(value) in hyperparameters, key

    # Load it, as another user would, and enjoy it.
    capsys.readouterr()
    assert main(["load_from_hub", "--algo", algo, "--env", env_id, "-orga", ORGANIZATION, "-f", "downloaded"]) == 0
    out = capsys.readouterr().out
    assert ("No normalization file" in out) != normalized
    downloaded = Path("downloaded") / algo / f"{env_id}_1"
    assert (downloaded / f"{env_id}.zip").is_file()
    assert {"config.yml", "args.yml", "env_kwargs.yml"} <= {path.name for path in (downloaded / env_id).iterdir()}
    assert (downloaded / env_id / "vecnormalize.pkl").is_file() == normalized
    assert (downloaded / "0.monitor.csv").is_file()
    loaded = _state(downloaded / f"{env_id}.zip", algorithm)
    assert all(th.equal(trained[key], loaded[key]) for key in trained)

    assert main(["enjoy", "--algo", algo, "--env", env_id, "-f", "downloaded", "--no-render", "-n", "50"]) == 0
    out = capsys.readouterr().out
    assert "Loading latest experiment, id=1" in out
    assert ("Loading running average" in out) == normalized  # enjoy normalizes with the downloaded statistics


def _cards(algo: str, env_id: str, hyperparams: dict | None = None) -> tuple[str, dict, str, dict]:
    """rl-zoo3's card and ours, for one agent."""
    original = hub.import_script("rl_zoo3.push_to_hub").generate_model_card
    arguments: tuple[Any, ...] = (algo, "TRPOCritic", ORGANIZATION, env_id, 1.0, 0.5, hyperparams or {"n_steps": 64}, {})
    theirs, their_metadata = original(*arguments)
    ours, our_metadata = hub.our_model_card(original)(*arguments)
    return theirs, their_metadata, ours, our_metadata


@pytest.mark.parametrize(
    ("env_id", "install"),
    [
        ("CartPole-v1", 'pip install "sb3-trpo-critic[zoo]"'),
        ("HalfCheetah-v5", 'pip install "sb3-trpo-critic[zoo,mujoco]"'),
        ("LunarLanderContinuous-v3", 'pip install "sb3-trpo-critic[zoo,box2d]"'),
        ("LunarLanderNoVel-v3", 'pip install "sb3-trpo-critic[zoo,box2d]"'),  # rl-zoo3's wrapper of a Box2D env
    ],
)
def test_the_install_line_names_the_environments_extra(env_id, install):
    import rl_zoo3.import_envs  # noqa: F401 (registers the NoVel environments)

    if "LunarLander" in env_id:
        pytest.importorskip("Box2D")

    theirs, _, ours, _ = _cards("trpo_critic", env_id)
    assert re.search(rf"^{re.escape(install)}$", ours, re.MULTILINE), ours
    # rl-zoo3's title, introduction and hyperparameters are kept
    assert ours.startswith(theirs.partition("\n## Usage")[0].rstrip("\n"))
    assert ours.endswith(theirs[theirs.index("\n## Hyperparameters") :])


def test_cards_of_rl_zoo3s_own_algorithms_are_rl_zoo3s():
    theirs, their_metadata, ours, our_metadata = _cards("ppo", "CartPole-v1")
    assert ours == theirs and our_metadata == their_metadata
    assert "sb3-trpo-critic" not in ours and "python -m rl_zoo3.load_from_hub --algo ppo" in ours


def test_a_card_in_another_layout_is_kept_and_completed():
    card = hub.model_card(
        "# A card\n\nwritten otherwise\n",
        algo="trpo_critic",
        algo_class_name="TRPOCritic",
        organization=ORGANIZATION,
        env_id="CartPole-v1",
        hyperparams={},
    )
    assert card.startswith("# A card\n\nwritten otherwise\n")
    assert 'pip install "sb3-trpo-critic[zoo]"' in card and "sb3-trpo-critic load_from_hub --algo trpo_critic" in card


@pytest.mark.parametrize("case", ["untrusted", "no_repository", "folder_exists"])
def test_load_errors_give_one_line(case, local_hub, monkeypatch, capsys):
    env_id, table, _ = CASES["trpo_critic"]
    argv = ["load_from_hub", "--algo", "trpo_critic", "--env", env_id, "-orga", ORGANIZATION, "-f", "downloaded"]
    if case == "untrusted":
        monkeypatch.delenv("TRUST_REMOTE_CODE")
        (local_hub.root / ORGANIZATION / f"trpo_critic-{env_id}").mkdir(parents=True)
        expected = r"loaded using `pickle\.load`.*set the environment variable `TRUST_REMOTE_CODE` to `True`"
    elif case == "no_repository":
        argv[argv.index(ORGANIZATION)] = "nobody"
        expected = r"Repository Not Found for url: nobody/trpo_critic-Pendulum-v1"
    else:
        _train("trpo_critic", env_id, table)
        assert (
            main(["push_to_hub", "--algo", "trpo_critic", "--env", env_id, "-f", "logs", "-orga", ORGANIZATION, "--no-render"])
            == 0
        )
        argv += ["--exp-id", "1"]
        assert main(argv) == 0
        expected = r"The folder downloaded/trpo_critic/Pendulum-v1_1 already exists, use --force"
    capsys.readouterr()
    assert main(argv) == 2
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err_lines) == 1, err_lines
    assert re.match(rf".* load_from_hub: error: .*{expected}", err_lines[0]), err_lines[0]
