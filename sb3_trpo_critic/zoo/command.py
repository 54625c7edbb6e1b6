"""
The implementation of the ``sb3-trpo-critic`` command (:mod:`sb3_trpo_critic.zoo.cli`, which checks the ``zoo``
extra first): rl-zoo3's scripts with TRPOCritic registered, the one-line report of user errors, the Hugging Face
Hub scripts (:mod:`sb3_trpo_critic.zoo.hub`), continued training (``train --trained-agent``) and EnvPool
environments (``train --vec-env envpool``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import runpy
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import gymnasium as gym
import yaml
from rl_zoo3.exp_manager import ExperimentManager
from rl_zoo3.utils import EnvironmentName

from sb3_trpo_critic.extras import as_missing_extra, check_extra, environment_dependency_message
from sb3_trpo_critic.trpo_critic import HyperparameterError
from sb3_trpo_critic.zoo import hub
from sb3_trpo_critic.zoo.cli import command_name
from sb3_trpo_critic.zoo.envs import vec_env_engine
from sb3_trpo_critic.zoo.hyperparameters import (
    ZooError,
    check_model_kwargs,
    hyperparameter_file,
    preprocess_schedules,
    read_hyperparameter_file,
    select_entry,
)
from sb3_trpo_critic.zoo.registry import ALGORITHMS, register

#: rl-zoo3's scripts this command runs: (module, function), or (module, None) for a ``__main__`` script (the hub
#: scripts, :data:`~sb3_trpo_critic.zoo.hub.HUB_SCRIPTS`, run by :func:`~sb3_trpo_critic.zoo.hub.run_hub_script`).
SCRIPTS: dict[str, tuple[str, str | None]] = {
    "train": ("rl_zoo3.train", "train"),
    "enjoy": ("rl_zoo3.enjoy", "enjoy"),
    "record_video": ("rl_zoo3.record_video", None),
    "plot_train": ("rl_zoo3.plots.plot_train", "plot_train"),
    "plot_from_file": ("rl_zoo3.plots.plot_from_file", "plot_from_file"),
    "all_plots": ("rl_zoo3.plots.all_plots", "all_plots"),
    "push_to_hub": (hub.HUB_SCRIPTS["push_to_hub"], None),
    "load_from_hub": (hub.HUB_SCRIPTS["load_from_hub"], None),
}

#: The scripts that may download an agent from the Hub (``enjoy`` does when the agent is not found).
DOWNLOADING_SCRIPTS = ("enjoy", "load_from_hub")

#: Exceptions that, raised before training starts, are reported in one line.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ZooError,
    HyperparameterError,
    FileNotFoundError,
    yaml.YAMLError,
    gym.error.Error,
    *hub.HUB_USER_ERRORS,
)

#: rl-zoo3's own user errors, which it raises as plain ValueError or AssertionError: (type, message pattern).
ZOO_USER_ERRORS: tuple[tuple[type[BaseException], re.Pattern[str]], ...] = (
    (ValueError, re.compile(r"not found in gym registry")),
    (ValueError, re.compile(r"^No (model|checkpoint) found for ")),
    (ValueError, re.compile(r"^VecNormalize stats .* not found")),
    (AssertionError, re.compile(r"^The .* folder was not found")),
    (AssertionError, re.compile(r"trained agent must be a valid path to a \.zip file")),
    (ValueError, re.compile(r"^You are about to download a model from the HF hub")),  # TRUST_REMOTE_CODE is not set
    (ValueError, re.compile(r"^Invalid truth value ")),  # TRUST_REMOTE_CODE is not a truth value
    (ValueError, re.compile(r"^The folder .* already exists, use --force")),  # load_from_hub
)

#: What main() catches before training starts, to report in one line if :func:`_is_user_error` says so.
CAUGHT: tuple[type[BaseException], ...] = (ValueError, AssertionError, *USER_ERRORS)

HYPERPARAMS_FLAGS = ("--hyperparams", "-params")

#: ``train``'s option of the vectorized environment; its values rl-zoo3 does not take are this command's.
VEC_ENV_FLAG = "--vec-env"
#: The values of :data:`VEC_ENV_FLAG` this command takes itself (rl-zoo3 takes ``dummy`` and ``subproc``).
OWN_VEC_ENVS = ("envpool",)

TRACEBACK_VARIABLE = "SB3_TRPO_CRITIC_TRACEBACK"


class ZooExperimentManager(ExperimentManager):
    """
    rl-zoo3's ``ExperimentManager`` with this package's defaults and checks.

    - ``trpo_critic`` without a config file reads :data:`~sb3_trpo_critic.zoo.HYPERPARAMS_FILE`,
      ``recurrent_trpo_critic`` the ``recurrent_trpo_critic.yml`` beside it;
    - a YAML hyperparameter file is checked first (exists, parses, has an entry for the environment),
      raising :class:`~sb3_trpo_critic.zoo.ZooError` with a one-line message;
    - for a ``-v5`` MuJoCo environment that falls back to ``default`` although a ``-v4`` entry
      exists, a warning says so (rl-zoo3's choice of entry is kept);
    - :attr:`started` records when training or the search starts: later errors are not user errors;
    - continuing a trained agent of this package's algorithms (``--trained-agent``), the count of timesteps goes on
      from the saved one (``learn(reset_num_timesteps=False)``; rl-zoo3 restarts it), and a warning says when
      the environment is normalized but the agent's ``vecnormalize.pkl`` is not found (rl-zoo3 then starts
      new statistics);
    - with :attr:`vec_env` ``envpool`` (``train --vec-env envpool``), :meth:`create_envs` builds every
      environment (training, evaluation, the search's) on EnvPool, with rl-zoo3's wrappers above it
      (:func:`~sb3_trpo_critic.zoo.envs.vec_env_engine`).
    """

    #: Whether training (or the hyperparameter search) has started in this process.
    started: ClassVar[bool] = False
    #: The engine of the environments: ``dummy`` (rl-zoo3's own, ``DummyVecEnv`` or ``SubprocVecEnv`` by its
    #: ``--vec-env``) or ``envpool``.
    vec_env: ClassVar[str] = "dummy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(ExperimentManager.__init__).bind(self, *args, **kwargs)
        if bound.arguments.get("config") is None and bound.arguments.get("algo") in ALGORITHMS:
            bound.arguments["config"] = str(hyperparameter_file(bound.arguments["algo"]))
        super().__init__(*bound.args[1:], **bound.kwargs)

    #: The entry of the hyperparameter file that was read (``None`` before, or for a Python config).
    entry: str | None = None

    def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Check the hyperparameter file, choose the entry by :func:`select_entry`, then read it as rl-zoo3 does."""
        if not self.config.endswith((".yml", ".yaml")):
            return super().read_hyperparameters()
        env_id = self.env_name.gym_id
        table = read_hyperparameter_file(self.config)
        self.entry, _, note = select_entry(table, env_id, algo=self.algo, origin=self.config)
        if self.entry in (env_id, "atari", "default"):  # rl-zoo3 chooses these itself
            return super().read_hyperparameters()
        print(f"note: {note}", file=sys.stderr)
        env_name, self.env_name = self.env_name, EnvironmentName(self.entry)  # rl-zoo3 reads the entry of env_name
        try:
            return super().read_hyperparameters()
        finally:
            self.env_name = env_name

    def _preprocess_hyperparams(  # type: ignore[override]
        self, hyperparams: dict[str, Any]
    ) -> tuple[dict[str, Any], Callable[..., Any] | None, list[Any], Callable[..., Any] | None]:
        """Preprocess as rl-zoo3 does (and ``lin_<start>`` of our schedule keys), then check that the algorithm
        takes every remaining key."""
        processed = super()._preprocess_hyperparams(hyperparams)
        preprocess_schedules(self.algo, processed[0])
        where = f"entry {self.entry!r} of {self.config}" if self.entry is not None else self.config
        check_model_kwargs(self.algo, processed[0], where=f"{where} (or --hyperparams)")
        return processed

    def learn(self, model: Any) -> None:
        """Train, as rl-zoo3 does (a continued training of ours counting on); errors from here on keep their traceback."""
        type(self).started = True
        if self.continue_training and self.algo in ALGORITHMS:
            model = _CountingOn(model)
        super().learn(model)

    def _maybe_normalize(self, env: Any, eval_env: bool) -> Any:
        """Wrap in ``VecNormalize`` as rl-zoo3 does; warn when a continued training's statistics are not found."""
        if self.continue_training and self.normalize and not eval_env:
            stats = os.path.join(os.path.dirname(self.trained_agent), self.env_name, "vecnormalize.pkl")
            if not os.path.exists(stats):
                print(
                    f"warning: continuing {self.trained_agent} with new VecNormalize statistics: {stats} not found",
                    file=sys.stderr,
                )
        return super()._maybe_normalize(env, eval_env)

    def create_envs(self, n_envs: int, eval_env: bool = False, no_log: bool = False) -> Any:
        """Build the environment as rl-zoo3 does, on the engine :attr:`vec_env`."""
        with vec_env_engine(self, self.vec_env):
            return super().create_envs(n_envs, eval_env=eval_env, no_log=no_log)

    def hyperparameters_optimization(self) -> None:
        """Search, as rl-zoo3 does; errors from here on are reported with their traceback."""
        type(self).started = True
        super().hyperparameters_optimization()


class _CountingOn:
    """
    A model, for rl-zoo3's ``ExperimentManager.learn``, whose ``learn`` goes on counting timesteps from the saved
    count (``reset_num_timesteps=False``); everything else is the model's.
    """

    def __init__(self, model: Any) -> None:
        self._model = model

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("reset_num_timesteps", False)
        return self._model.learn(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _usage(command: str) -> str:
    return (
        f"usage: {command} {{{','.join(SCRIPTS)}}} [rl-zoo3 arguments ...]\n\n"
        "Runs rl-zoo3's script with TRPOCritic registered as `trpo_critic` and RecurrentTRPOCritic as\n"
        "`recurrent_trpo_critic`, next to rl-zoo3's algorithms (ppo, trpo, ppo_lstm, ...). `train --algo\n"
        "trpo_critic` reads sb3-trpo-critic's trpo_critic.yml (recurrent_trpo_critic: recurrent_trpo_critic.yml)\n"
        "unless --conf-file is given. `train --vec-env envpool` builds the environments on EnvPool (the envpool\n"
        "extra). `<script> --help` lists the script's arguments.\n"
    )


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    old = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = old


def _one_line(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if isinstance(exc, FileNotFoundError) and exc.filename:
        message = f"{exc.strerror}: {exc.filename}"
    return message or type(exc).__name__


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, USER_ERRORS):
        return True
    return any(isinstance(exc, kind) and pattern.search(str(exc)) for kind, pattern in ZOO_USER_ERRORS)


def check_hyperparams_arguments(arguments: Sequence[str]) -> None:
    """
    Evaluate the values of ``--hyperparams KEY:VALUE ...`` as rl-zoo3 will (``eval`` in ``rl_zoo3.utils``), so
    that a value which is not a Python expression is reported in one line instead of rl-zoo3's traceback.

    :param arguments: the script's arguments
    :raises ZooError: naming the first ``KEY:VALUE`` whose value does not evaluate
    """
    import rl_zoo3.utils

    inside = False
    for argument in arguments:
        if argument in HYPERPARAMS_FLAGS:
            inside = True
            continue
        if argument.startswith("-"):
            inside = False
        if not inside:
            continue
        key, _, value = argument.partition(":")
        try:
            eval(value, dict(vars(rl_zoo3.utils)))  # the expression rl-zoo3's StoreDict evaluates
        except Exception as exc:  # any error of evaluating the user's expression is the user's
            raise ZooError(
                f"--hyperparams {argument}: the value {value!r} of {key!r} is not a Python expression "
                f"({type(exc).__name__}: {exc}); quote strings, e.g. {key}:\"'text'\""
            ) from None


def take_vec_env(arguments: Sequence[str]) -> tuple[list[str], str]:
    """
    Take ``--vec-env envpool`` (or ``--vec-env=envpool``) out of ``train``'s arguments: rl-zoo3's parser takes only
    its own engines (``dummy``, ``subproc``), which are left in place.

    :param arguments: The script's arguments
    :return: The arguments for rl-zoo3, and the engine (``dummy`` when none of :data:`OWN_VEC_ENVS` is given)
    """
    kept: list[str] = []
    vec_env = "dummy"
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        value = None
        if argument == VEC_ENV_FLAG and index + 1 < len(arguments):
            value, width = arguments[index + 1], 2
        elif argument.startswith(f"{VEC_ENV_FLAG}="):
            value, width = argument.partition("=")[2], 1
        if value in OWN_VEC_ENVS:
            vec_env = value
            index += width
            continue
        kept.append(argument)
        index += 1
    return kept, vec_env


def _script(name: str) -> Callable[[], Any]:
    module_name, function = SCRIPTS[name]
    if name in hub.HUB_SCRIPTS:
        return lambda: hub.run_hub_script(name)
    if function is None:
        return lambda: runpy.run_module(module_name, run_name="__main__", alter_sys=False)
    import importlib

    module = importlib.import_module(module_name)
    return getattr(module, function)  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run one of rl-zoo3's scripts with TRPOCritic registered (the ``zoo`` extra installed: see
    :func:`sb3_trpo_critic.zoo.cli.main`, which checks it first).

    :param argv: ``[script, *arguments]``; default: ``sys.argv[1:]``
    :return: The exit status: 0 on success, 2 for a usage or user error
    """
    args = list(sys.argv[1:] if argv is None else argv)
    command = command_name()
    if not args or args[0] in ("-h", "--help"):
        print(_usage(command), end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    script, rest = args[0], args[1:]
    if script not in SCRIPTS:
        print(f"{command}: error: unknown script {script!r}; choose from {', '.join(SCRIPTS)}", file=sys.stderr)
        return 2

    register()
    ZooExperimentManager.started = False
    try:
        check_hyperparams_arguments(rest)
        vec_env = "dummy"
        if script == "train":
            rest, vec_env = take_vec_env(rest)
            if vec_env == "envpool":
                check_extra("envpool", needed_by="--vec-env envpool")
        import rl_zoo3.train

        with contextlib.ExitStack() as changes:
            changes.enter_context(_patched(rl_zoo3.train, "ExperimentManager", ZooExperimentManager))
            changes.enter_context(_patched(ZooExperimentManager, "vec_env", vec_env))
            changes.enter_context(_argv([f"{command} {script}", *rest]))
            if script in DOWNLOADING_SCRIPTS:
                changes.enter_context(hub.missing_files_are_http_errors())
            try:
                _script(script)()
            except SystemExit as exc:  # argparse (--help, bad flags) and scripts calling sys.exit
                if exc.code is None or isinstance(exc.code, int):
                    return exc.code or 0
                print(exc.code, file=sys.stderr)
                return 1
    except ImportError as exc:
        if ZooExperimentManager.started or os.environ.get(TRACEBACK_VARIABLE):
            raise
        missing = as_missing_extra(exc, "this script", preferred="zoo")
        print(f"{command} {script}: error: {_one_line(missing or exc)}", file=sys.stderr)
        return 2
    except CAUGHT as exc:
        if not _is_user_error(exc) or ZooExperimentManager.started or os.environ.get(TRACEBACK_VARIABLE):
            raise
        message = environment_dependency_message(exc, _option(rest, "--env")) or _one_line(exc)
        print(f"{command} {script}: error: {message}", file=sys.stderr)
        return 2
    return 0


def _option(arguments: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in a script's arguments (``--env Hopper-v5`` or ``--env=Hopper-v5``), or ``None``."""
    for index, argument in enumerate(arguments):
        if argument == flag and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(f"{flag}="):
            return argument.partition("=")[2]
    return None
