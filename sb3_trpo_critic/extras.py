"""
The optional extras (``pip install "sb3-trpo-critic[zoo]"``, ``[benchmarks]``, ``[mujoco]``, ``[box2d]``,
``[envpool]``) and what a missing one is reported as.

``import sb3_trpo_critic`` needs none of them. A command or module that needs one checks for it
(:func:`requires_extra`) and, if a module of the extra cannot be imported, says so in one line naming the extra:
a command (run as ``__main__``, or the ``sb3-trpo-critic`` command) prints
``<command>: error: <message>`` and exits with status 2; an import raises :class:`MissingExtraError` (an
``ImportError``) with the same message. A MuJoCo or Box2D environment without its extra is reported the same way
(:func:`environment_dependency_message`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

#: The distribution name, as ``pip install`` takes it.
DISTRIBUTION = "sb3-trpo-critic"

#: The modules (import names) each extra installs that this package imports, directly or through rl-zoo3; a
#: ``ModuleNotFoundError`` for one of them means the extra is missing. Core dependencies (torch, gymnasium, SB3,
#: sb3-contrib, tqdm, rich) are not listed: without them the package itself is broken.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    # rl_zoo3[plots], Optuna, requests; and what rl-zoo3 itself imports (PyYAML, the Hugging Face Hub clients, ...)
    "zoo": (
        "rl_zoo3",
        "optuna",
        "yaml",
        "requests",
        "huggingface_sb3",
        "huggingface_hub",
        "pytablewriter",
        "shimmy",
        "seaborn",
        "scipy",
        "pandas",
        "matplotlib",
        "rliable",
    ),
    # the runner (rl-zoo3), the report (rliable, pandas, matplotlib), --backend ray
    "benchmarks": (
        "rl_zoo3",
        "optuna",
        "yaml",
        "huggingface_sb3",
        "huggingface_hub",
        "rliable",
        "pandas",
        "matplotlib",
        "ray",
    ),
    "mujoco": ("mujoco",),
    "box2d": ("Box2D",),
    # the EnvPool engine of vectorized environments (sb3_trpo_critic.envpool, --vec-env envpool)
    "envpool": ("envpool",),
}

#: The extra of an environment dependency, by the module gymnasium fails to import, and the dependency's name.
ENVIRONMENT_EXTRAS: dict[str, tuple[str, str]] = {"mujoco": ("mujoco", "MuJoCo"), "Box2D": ("box2d", "Box2D")}


class MissingExtraError(ImportError):
    """
    A module of an optional extra is not installed: the message names the extra and the ``pip install`` line.

    :param extra: The extra (``zoo``, ``benchmarks``, ``mujoco``, ``box2d``, ``envpool``)
    :param module: The module that is missing
    :param needed_by: What needs it, for the message (``the sb3-trpo-critic command``, a module)
    """

    def __init__(self, extra: str, module: str, needed_by: str) -> None:
        self.extra = extra
        super().__init__(
            f"{needed_by} needs the '{extra}' extra ({module} is not installed): {install_command(extra)}", name=module
        )


def install_command(*extras: str) -> str:
    """
    :param extras: Extras, in order (``"zoo", "mujoco"``)
    :return: The ``pip install`` line of the package with them: ``pip install "sb3-trpo-critic[zoo,mujoco]"``
    """
    return f'pip install "{DISTRIBUTION}[{",".join(extras)}]"' if extras else f"pip install {DISTRIBUTION}"


def _top_level(name: str | None) -> str:
    return (name or "").partition(".")[0]


def missing_module(modules: tuple[str, ...] | list[str]) -> str | None:
    """
    :param modules: Import names of top-level modules
    :return: The first of them that cannot be found (not installed, or hidden), or ``None``
    """
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):  # a parent that fails to import, or a module without a spec
            return module
    return None


def extra_of(error: BaseException, preferred: str | None = None) -> str | None:
    """
    The extra that would install the module an ``ImportError`` is about.

    :param error: An exception, usually a ``ModuleNotFoundError``
    :param preferred: The extra to name first when several install the module (the one the caller needs)
    :return: The extra, or ``None`` if the error is not about a module of an extra
    """
    if isinstance(error, MissingExtraError):
        return error.extra
    if not isinstance(error, ImportError):
        return None
    module = _top_level(error.name)
    extras = [preferred] if preferred in EXTRA_MODULES else []
    extras += [extra for extra in EXTRA_MODULES if extra != preferred]
    return next((extra for extra in extras if module in EXTRA_MODULES[extra]), None)


def as_missing_extra(error: BaseException, needed_by: str, preferred: str | None = None) -> MissingExtraError | None:
    """
    :param error: An exception raised while importing or running something that needs an extra
    :param needed_by: What needs it, for the message
    :param preferred: The extra the caller needs (named first when several install the missing module)
    :return: The :class:`MissingExtraError` it means, or ``None`` if it is not about a missing extra
    """
    if isinstance(error, MissingExtraError) and (preferred is None or error.extra == preferred):
        return error
    extra = extra_of(error if not isinstance(error, MissingExtraError) else ImportError(name=error.name), preferred)
    if extra is None:
        return None
    return MissingExtraError(extra, _top_level(getattr(error, "name", None)), needed_by)


def check_extra(extra: str, modules: tuple[str, ...] | None = None, *, needed_by: str) -> None:
    """
    :param extra: The extra
    :param modules: The extra's modules to check (default: all of :data:`EXTRA_MODULES` ``[extra]``)
    :param needed_by: What needs it, for the message
    :raises MissingExtraError: For the first module that cannot be found
    """
    module = missing_module(EXTRA_MODULES[extra] if modules is None else modules)
    if module is not None:
        raise MissingExtraError(extra, module, needed_by)


def _main_command() -> str:
    """How the running program was started: ``python -m <module>``, or the script's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"


@contextlib.contextmanager
def requires_extra(extra: str, module_name: str, *modules: str) -> Iterator[None]:
    """
    Check an extra, and report a missing module of it, for the imports (or the code) of a module that needs it::

        with requires_extra("benchmarks", __name__, "rl_zoo3", "rliable"):
            from sb3_trpo_critic.benchmarks.run import run_one

    On entering, ``modules`` are looked for (:func:`check_extra`); inside, a ``ModuleNotFoundError`` of a module of
    the extra (or of another extra: ``mujoco``, ...) becomes the same report. Other errors pass unchanged.

    :param extra: The extra the module needs
    :param module_name: The caller's ``__name__``: ``"__main__"`` (run as a command) prints
        ``<command>: error: <message>`` and exits with status 2; otherwise :class:`MissingExtraError` is raised
    :param modules: The extra's modules to look for first (default: none; only errors inside are reported)
    :raises MissingExtraError: When imported, not run as a command
    :raises SystemExit: With status 2, when run as a command
    """
    running = module_name == "__main__"
    needed_by = "this command" if running else module_name
    try:
        if modules:
            check_extra(extra, tuple(modules), needed_by=needed_by)
        yield
    except ImportError as error:
        missing = as_missing_extra(error, needed_by, preferred=extra)
        if missing is None:
            raise
        if running:
            print(f"{_main_command()}: error: {missing}", file=sys.stderr)
            raise SystemExit(2) from None
        if missing is error:
            raise
        raise missing from error


#: The extra of an environment, by a part of the module that defines it.
ENVIRONMENT_MODULE_EXTRAS = (("mujoco", "mujoco"), ("box2d", "box2d"))


def environment_extras(env_id: str) -> tuple[str, ...]:
    """
    The extras an environment needs besides the package (``("mujoco",)`` for ``HalfCheetah-v5``).

    Read from the module of its entry point; for an entry point that is a function (rl-zoo3's velocity-masked
    environments), from the module of the environment it makes, which needs its dependency installed.

    :param env_id: A registered environment id
    :return: The extras (``mujoco``, ``box2d``), none for an environment of gymnasium's core or an unknown one
    """
    import gymnasium as gym

    try:
        entry_point = gym.spec(env_id).entry_point
    except gym.error.Error:
        return ()
    where = entry_point if isinstance(entry_point, str) else ""
    if not where:
        try:
            env = gym.make(env_id)
        except Exception:  # an environment that cannot be made here has no module to read
            return ()
        where = type(env.unwrapped).__module__
        env.close()
    return tuple(extra for marker, extra in ENVIRONMENT_MODULE_EXTRAS if marker in where)


def environment_dependency_message(error: BaseException, env_id: str | None = None) -> str | None:
    """
    The message for an environment whose dependency is missing (gymnasium's ``DependencyNotInstalled`` for
    MuJoCo or Box2D), naming this package's extra instead of gymnasium's.

    :param error: An exception raised while making an environment
    :param env_id: The environment, for the message
    :return: ``<env_id> needs MuJoCo, which is not installed: pip install "sb3-trpo-critic[mujoco]"``, or ``None``
        if the error is not about the MuJoCo or Box2D dependency
    """
    import gymnasium as gym

    if not isinstance(error, gym.error.DependencyNotInstalled):
        return None
    cause = error.__cause__
    module = _top_level(getattr(cause, "name", None)) if isinstance(cause, ImportError) else ""
    if module not in ENVIRONMENT_EXTRAS:
        text = str(error)
        module = next((name for name, (_, label) in ENVIRONMENT_EXTRAS.items() if label.lower() in text.lower()), "")
    if module not in ENVIRONMENT_EXTRAS:
        return None
    extra, label = ENVIRONMENT_EXTRAS[module]
    subject = env_id or "this environment"
    return f"{subject} needs {label}, which is not installed (the '{extra}' extra): {install_command(extra)}"
