"""
The ``sb3-trpo-critic`` command (also ``python -m sb3_trpo_critic.zoo``): rl-zoo3's scripts with TRPOCritic.

``sb3-trpo-critic <script> [rl-zoo3 arguments]`` runs rl-zoo3's ``train``, ``enjoy``,
``record_video``, ``plot_train``, ``plot_from_file``, ``all_plots``, ``push_to_hub`` or
``load_from_hub`` with ``trpo_critic`` and ``recurrent_trpo_critic`` registered
(:func:`~sb3_trpo_critic.zoo.register`) next to rl-zoo3's own algorithms. Arguments are passed to
rl-zoo3 unchanged, with one default added: ``train --algo trpo_critic`` (or
``recurrent_trpo_critic``) without ``--conf-file`` reads this package's ``trpo_critic.yml``
(``recurrent_trpo_critic.yml``).

The entry of a hyperparameter file is chosen by :func:`~sb3_trpo_critic.zoo.select_entry`, the
rule the comparison runner uses too: for a ``-v5`` MuJoCo environment without an entry of its own,
the same environment's ``-v4`` entry (rl-zoo3 alone would take ``default``); a note says so.

``train --algo trpo_critic --trained-agent <zip>`` continues that training: the saved actor, critic,
critic optimizer and the ``vecnormalize.pkl`` beside it are loaded (by rl-zoo3), and the count of
timesteps goes on from the saved one (rl-zoo3 restarts it at 0 for its own algorithms, and still does).
``train --vec-env envpool`` builds the environments (training, evaluation, a search's) on EnvPool
(:mod:`sb3_trpo_critic.envpool`, the ``envpool`` extra) with rl-zoo3's wrappers above them; rl-zoo3's own
``--vec-env dummy`` and ``subproc`` are rl-zoo3's. ``push_to_hub`` writes a model card that names TRPOCritic,
this package and its install line (:mod:`sb3_trpo_critic.zoo.hub`).

User errors found before training starts (unknown environment, hyperparameter file missing,
malformed or without an entry for the environment, a hyperparameter the algorithm does not take,
a ``--hyperparams`` value that is not a Python expression, an invalid hyperparameter value, ...)
print one line, ``<command> <script>: error: <message>``, and exit with status 2. Other errors
(bugs) keep their traceback. Set the environment variable ``SB3_TRPO_CRITIC_TRACEBACK=1`` to get
the full traceback of user errors too. Without the ``zoo`` extra (rl-zoo3, Optuna, ...), the command
says so in one line, ``pip install "sb3-trpo-critic[zoo]"``, and exits with status 2; this module
imports without it.

The implementation is :mod:`sb3_trpo_critic.zoo.command`; its names (``ZooExperimentManager``,
``SCRIPTS``, ...) can be imported from here too.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sb3_trpo_critic.extras import as_missing_extra, check_extra

#: The modules of the ``zoo`` extra that every script needs (the plot and hub scripts need more: a missing one is
#: reported when the script imports it).
ZOO_MODULES = ("rl_zoo3", "optuna", "yaml")


def command_name() -> str:
    """:return: The command's name as the user typed it: ``sb3-trpo-critic`` or ``python -m sb3_trpo_critic.zoo``"""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "__main__.py" or not argv0:
        return "python -m sb3_trpo_critic.zoo"
    return Path(argv0).name


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run one of rl-zoo3's scripts with TRPOCritic registered (:func:`sb3_trpo_critic.zoo.command.main`), after
    checking that the ``zoo`` extra is installed.

    :param argv: ``[script, *arguments]``; default: ``sys.argv[1:]``
    :return: The exit status: 0 on success, 2 for a usage or user error, or a missing extra
    """
    try:
        check_extra("zoo", ZOO_MODULES, needed_by="this command")
        from sb3_trpo_critic.zoo import command
    except ImportError as error:
        missing = as_missing_extra(error, "this command", preferred="zoo")
        if missing is None:
            raise
        print(f"{command_name()}: error: {missing}", file=sys.stderr)
        return 2
    return command.main(argv)


def run() -> None:
    """Console-script entry point: :func:`main` on ``sys.argv``, then exit with its status."""
    sys.exit(main())


def __getattr__(name: str) -> Any:
    """The names of :mod:`sb3_trpo_critic.zoo.command` (``ZooExperimentManager``, ``SCRIPTS``, ...), imported on use."""
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from sb3_trpo_critic.zoo import command

    try:
        return getattr(command, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
