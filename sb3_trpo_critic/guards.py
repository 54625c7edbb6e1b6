"""Checks of what comes into :class:`~sb3_trpo_critic.TRPOCritic` from outside: rollout data and save files.

* :class:`NonFiniteRolloutCheck` -- a callback that ``learn()`` always runs first: it stops training
  with a :class:`NonFiniteDataError` naming the observation or reward that is NaN or infinite, at
  the step the environment returned it (before the policy sees it).
* :func:`check_save_file` -- run by ``TRPOCritic.load()``: a file that is not a readable zip, or
  that holds a model of another algorithm, is refused with a ``ValueError`` that says so.
"""

from __future__ import annotations

import io
import json
import pathlib
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import open_path

#: Attributes that every TRPOCritic save file has and other algorithms' files do not.
TRPO_CRITIC_SAVE_KEYS = frozenset({"line_search_accept_ratio", "cg_residual_tol", "critic_max_grad_norm"})
#: What the save files of related algorithms hold, recognized by their attributes and, where two share them,
#: by the module of the saved policy class (``None``: any): the first match names the file's algorithm.
OTHER_ALGORITHMS: tuple[tuple[str, frozenset[str], str | None], ...] = (
    ("sb3_contrib.TRPO", frozenset({"cg_max_steps", "cg_damping", "target_kl", "sub_sampling_factor"}), None),
    ("sb3_contrib.RecurrentPPO", frozenset({"clip_range", "n_epochs", "ent_coef"}), "sb3_contrib.common.recurrent"),
    ("PPO", frozenset({"clip_range", "n_epochs", "ent_coef"}), None),
    ("A2C", frozenset({"ent_coef", "vf_coef", "normalize_advantage"}), None),
)


class NonFiniteDataError(ValueError):
    """The environment returned a NaN or infinite observation or reward."""


def _non_finite_message(what: str, values: Any, num_timesteps: int) -> str | None:
    """Where ``values`` (an array, or a dict of arrays for Dict observations) is not finite; ``None`` if it all is."""
    items = values.items() if isinstance(values, Mapping) else [(None, values)]
    for key, array in items:
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.floating):
            continue  # integer observations (images, Discrete) are always finite
        finite = np.isfinite(array)
        if finite.all():
            continue
        first = np.argwhere(~finite)[0]
        env_index = int(first[0]) if array.ndim > 0 else 0
        element = tuple(int(i) for i in first[1:])
        value = array[tuple(first)]
        where = f"key {key!r}, " if key is not None else ""
        return (
            f"the environment returned a non-finite {what} ({value}) at num_timesteps={num_timesteps}: "
            f"{where}env index {env_index}" + (f", element {element}" if element else "") + ". TRPOCritic cannot learn "
            "from it; find where it comes from (stable_baselines3.common.vec_env.VecCheckNan checks every step "
            "of an environment), or clean it in a wrapper"
        )
    return None


class NonFiniteRolloutCheck(BaseCallback):
    """
    Stop training with :class:`NonFiniteDataError` as soon as the (vectorized, possibly normalized)
    environment returns a NaN or infinite observation or reward, naming which.

    ``TRPOCritic.learn()`` runs it before the user's callbacks. It checks the observations after
    ``reset()`` (at the start of each rollout), and those and the rewards after each
    ``env.step()``, as the rollout loop sees them: under ``VecNormalize``, one NaN reward poisons
    the return statistics, so every later normalized reward is NaN too; the check stops at the
    first one.
    """

    def _check(self, what: str, values: Any) -> None:
        message = _non_finite_message(what, values, self.num_timesteps)
        if message is not None:
            raise NonFiniteDataError(message)

    def _on_rollout_start(self) -> None:
        last_obs = getattr(self.model, "_last_obs", None)
        if last_obs is not None:
            self._check("observation (from reset)", last_obs)

    def _on_step(self) -> bool:
        if "new_obs" in self.locals:
            self._check("observation", self.locals["new_obs"])
        if "rewards" in self.locals:
            self._check("reward", self.locals["rewards"])
        for info in self.locals.get("infos", ()):
            if "terminal_observation" in info:
                self._check("terminal observation", np.asarray(info["terminal_observation"])[None])
        return True


def check_save_file(path: str | pathlib.Path | io.BufferedIOBase, algorithm: str = "TRPOCritic") -> None:
    """
    Refuse a file that ``TRPOCritic.load()`` cannot read as a TRPOCritic model, with an error that says why.

    :param path: what ``load()`` was given (a path, with or without ``.zip``, or a file object)
    :param algorithm: the class that loads it, for the message (``TRPOCritic`` or ``RecurrentTRPOCritic``)
    :raises FileNotFoundError: if there is no such file
    :raises ValueError: if the file is not a readable zip (truncated or corrupt), is not a
        Stable-Baselines3 save file, or holds a model of another algorithm
    """
    file = open_path(path, "r", verbose=0, suffix="zip")
    name = getattr(file, "name", str(path))
    position = file.tell() if file.seekable() else None
    try:
        try:
            with zipfile.ZipFile(file) as archive:
                damaged = archive.testzip()
                if damaged is not None:
                    raise ValueError(f"{name} is corrupt: its member {damaged!r} fails its checksum")
                if "data" not in archive.namelist():
                    raise ValueError(
                        f"{name} is truncated or corrupt, or not a Stable-Baselines3 save file: it has no 'data' member"
                    )
                data = json.loads(archive.read("data").decode())
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as error:
            raise ValueError(f"{name} is truncated or corrupt: not a readable zip file ({error})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{name} is corrupt: its 'data' member is not JSON ({error})") from None
    finally:
        if position is not None:
            file.seek(position)
        if not isinstance(path, io.BufferedIOBase):
            file.close()
    if not isinstance(data, dict):
        raise ValueError(f"{name} is corrupt: its 'data' member is not a mapping")
    if data.keys() >= TRPO_CRITIC_SAVE_KEYS:
        return
    policy_class = data.get("policy_class")
    policy_module = str(policy_class.get("__module__", "")) if isinstance(policy_class, dict) else ""
    holder = next(
        (
            algo
            for algo, keys, module in OTHER_ALGORITHMS
            if keys <= data.keys() and (module is None or policy_module.startswith(module))
        ),
        "another algorithm",
    )
    raise ValueError(
        f"{name} holds a model saved by {holder}, not by {algorithm} (it has none of "
        f"{', '.join(sorted(TRPO_CRITIC_SAVE_KEYS))}). Load it with that algorithm's load(), then build a "
        f"{algorithm} and copy the policy's weights into it: see docs/migrating.md "
        "(sb3_trpo_critic.from_sb3_contrib translates sb3_contrib.TRPO's hyperparameters)"
    )
