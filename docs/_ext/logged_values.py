"""Sphinx directive ``logged-values``: a table of the ``train/`` keys TRPOCritic logs, generated from
:data:`sb3_trpo_critic.logged.LOGGED_VALUES` (key, meaning, how it is computed, how to read it).

Usage, in a MyST page (the table's texts are MyST Markdown)::

    ```{logged-values} policy step
    ```

The argument is one of :data:`sb3_trpo_critic.logged.GROUPS`; the table has that group's rows, in the
library table's order. An unknown group, and at the end of the build a row that no table showed, fail a
``-W`` build: a new logged value cannot be left out of the docs.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from seen_names import check_all_seen, mark_seen
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
#: The build environment's set of the keys some table showed.
SEEN = "trpo_logged_values_seen"

#: the field prefixes of an UpdateRecord's source names, and the class each field is documented in
_RECORDS = {
    "step.": "sb3_trpo_critic.trpo_critic.PolicyStepResult.",
    "fit.": "sb3_trpo_critic.trpo_critic.CriticFitResult.",
}


def computed_from(row: Any) -> str:
    """The "computed from" cell of a row: a linked field name, a function's docstring, or "logged by SB3"."""
    if row.source is None:
        return "logged by SB3"
    if callable(row.source):
        return " ".join((row.source.__doc__ or row.source.__name__).split())
    for prefix, target in _RECORDS.items():
        if row.source.startswith(prefix):
            return f"{{py:attr}}`{row.source} <{target}{row.source.removeprefix(prefix)}>`"
    return f"{{py:attr}}`{row.source} <sb3_trpo_critic.logged.UpdateRecord.{row.source}>`"


def _cell(text: str) -> str:
    return text.replace("\n", " ")


def table_lines(rows: list[Any]) -> list[str]:
    """A Markdown table of ``rows`` (the "how to read it" column only where a row has advice)."""
    with_reading = any(row.reading for row in rows)
    header = ["key", "what it is", "computed from"] + (["how to read it"] if with_reading else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [f"`{row.key.removeprefix('train/')}`", row.meaning, computed_from(row)]
        if with_reading:
            cells.append(row.reading)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return lines


class LoggedValuesTable(SphinxDirective):
    required_arguments = 1
    final_argument_whitespace = True
    has_content = False

    def run(self) -> list[nodes.Node]:
        from sb3_trpo_critic.logged import GROUPS, LOGGED_VALUES

        group = self.arguments[0].strip()
        if group not in GROUPS:
            logger.warning(
                "logged-values: %r is not a group of sb3_trpo_critic.logged (%s)",
                group,
                ", ".join(GROUPS),
                location=self.get_location(),
            )
            return []
        rows = [row for row in LOGGED_VALUES if row.group == group]
        mark_seen(self.env, SEEN, (row.key for row in rows))
        container = nodes.container(classes=["logged-values-table"])
        # inside a MyST page, the nested parse reads Markdown
        self.state.nested_parse(StringList(table_lines(rows), source="sb3_trpo_critic.logged"), self.content_offset, container)
        return [container]


def _logged_keys() -> list[str]:
    from sb3_trpo_critic.logged import LOGGED_VALUES

    return [row.key for row in LOGGED_VALUES]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("logged-values", LoggedValuesTable)
    check_all_seen(app, SEEN, _logged_keys, "logged-values: train/ keys missing from the docs' tables: %s")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
