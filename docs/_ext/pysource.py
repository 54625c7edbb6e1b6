"""Sphinx directive ``pysource``: show the source code of an importable Python object, by its dotted
name, read with :func:`inspect.getsource` at build time.

The docs show code by object, never by matching the text of a comment or a line: a renamed or
removed object is an error (a ``-W`` build fails), not a silently wrong excerpt::

    ```{pysource} sb3_trpo_critic.trust_region.conjugate_gradient
    ```

``:step: N`` shows only step ``N`` of a function whose body numbers its steps with comments
``# 1. ...``, ``# 2. ...`` (as ``TRPOCritic._policy_step`` does): the lines from the ``# N.`` comment to
the next numbered comment, or to the end of the function. A function without a step ``N``, or whose
numbered comments are not 1, 2, 3, ... in order, is an error too::

    ```{pysource} sb3_trpo_critic.trpo_critic.TRPOCritic._policy_step
    :step: 3
    ```

Code outside this repository (e.g. SB3's GAE), which ``literalinclude`` cannot reach by path, is
captioned "installed version": the page shows the code of the version the docs were built against.
"""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: a numbered step's comment: ``# 3. Conjugate gradient: ...``
_STEP = re.compile(r"^\s*# (\d+)\. ")

#: this repository's package: its code is shown as it is in the checkout the docs are built from
PACKAGE = Path(__file__).resolve().parents[2] / "sb3_trpo_critic"


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


def step_lines(source: str, step: int) -> str:
    """
    The lines of step ``step`` of ``source``: from its ``# step.`` comment to the next numbered comment.

    :raises ValueError: if the numbered comments are not 1, 2, 3, ... in order, or there is no step ``step``
    """
    lines = source.splitlines()
    marks = [(index, int(match.group(1))) for index, line in enumerate(lines) if (match := _STEP.match(line))]
    numbers = [number for _, number in marks]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"its numbered step comments are {numbers}, not 1, 2, 3, ... in order")
    if step not in numbers:
        raise ValueError(f"it has no step {step} (its steps: {numbers or 'none'})")
    start = marks[step - 1][0]
    end = marks[step][0] if step < len(marks) else len(lines)
    return textwrap.dedent("\n".join(lines[start:end]).rstrip() + "\n")


class PySource(SphinxDirective):
    required_arguments = 1
    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {"step": directives.positive_int}

    def run(self) -> list[nodes.Node]:
        dotted = self.arguments[0]
        try:
            obj = resolve(dotted)
            source = textwrap.dedent(inspect.getsource(obj))
            path = Path(inspect.getsourcefile(obj) or "").resolve()
        except (ImportError, AttributeError, OSError, TypeError) as error:
            raise self.error(f"pysource: cannot show the source of {dotted}: {error}") from error
        step = self.options.get("step")
        if step is not None:
            try:
                source = step_lines(source, step)
            except ValueError as error:
                raise self.error(f"pysource: cannot show step {step} of {dotted}: {error}") from error
        ours = path.is_relative_to(PACKAGE)
        if ours:
            self.env.note_dependency(str(path))  # the page is rebuilt when the code changes
        block = nodes.literal_block(source, source, language="python")
        caption = nodes.paragraph()
        label = f"{dotted}, step {step}" if step is not None else dotted
        caption += nodes.emphasis(text=label if ours else f"{label} (installed version)")
        return [caption, block]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("pysource", PySource)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
