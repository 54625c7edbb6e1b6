"""Sphinx directive ``pysource``: show the source code of an importable Python object, read
with :func:`inspect.getsource` from the installed package at build time.

For code outside this repository (e.g. SB3's GAE), which ``literalinclude`` cannot reach by
path; the page then shows the code of the version the docs were built against::

    ```{pysource} stable_baselines3.common.buffers.RolloutBuffer.compute_returns_and_advantage
    ```
"""

from __future__ import annotations

import importlib
import inspect
import textwrap
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def resolve(dotted: str) -> Any:
    """Import the longest importable module prefix of ``dotted``, then follow attributes."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(f"cannot import any prefix of {dotted!r}")


class PySource(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        dotted = self.arguments[0]
        try:
            source = textwrap.dedent(inspect.getsource(resolve(dotted)))
        except (ImportError, AttributeError, OSError, TypeError) as error:
            raise self.error(f"pysource: cannot show the source of {dotted}: {error}") from error
        block = nodes.literal_block(source, source, language="python")
        caption = nodes.paragraph()
        caption += nodes.emphasis(text=f"{dotted} (installed version)")
        return [caption, block]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("pysource", PySource)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
