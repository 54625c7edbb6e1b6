"""Names a directive has shown, kept on Sphinx's build environment, and a warning for the ones no page showed.

The hyperparameter tables and the logged-values tables both use it: each directive records what it
rendered (:func:`mark_seen`), and :func:`check_all_seen` connects the merge of parallel reads and the
end-of-build check that warns (an error under ``-W``) about expected names that no page showed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def mark_seen(env: Any, attribute: str, names: Iterable[str]) -> None:
    """Record ``names`` as shown, in the set ``env.<attribute>``."""
    setattr(env, attribute, getattr(env, attribute, set()) | set(names))


def check_all_seen(app: Sphinx, attribute: str, expected: Callable[[], Iterable[str]], message: str) -> None:
    """
    At the end of the build, warn ``message % missing`` when some of ``expected()`` were never shown
    (nothing is checked when no page used the directive, e.g. in a partial build).
    """

    def merge(app: Sphinx, env: Any, docnames: set[str], other: Any) -> None:
        mark_seen(env, attribute, getattr(other, attribute, set()))

    def check(app: Sphinx, env: Any) -> None:
        seen = getattr(env, attribute, set())
        if not seen:
            return
        missing = [name for name in expected() if name not in seen]
        if missing:
            logger.warning(message, ", ".join(missing))

    app.connect("env-merge-info", merge)
    app.connect("env-check-consistency", check)
