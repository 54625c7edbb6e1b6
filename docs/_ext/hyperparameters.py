"""Sphinx directive ``hyperparameter-table``: a table of TRPOCritic's constructor arguments,
generated from the signature (defaults) and the class docstring (``:param name:`` fields).

Usage, inside an ``{eval-rst}`` block of a MyST page or in a reST page::

    .. hyperparameter-table::
       :names: target_kl, cg_damping

Every name must be a documented parameter of ``TRPOCritic.__init__``, and at the end of the
build every parameter must have appeared in some table: a new constructor argument without
a docstring entry, or missing from the reference, fails a ``-W`` build.
"""

from __future__ import annotations

import inspect
import re
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from seen_names import check_all_seen, mark_seen
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
#: The build environment's set of the arguments some table showed.
SEEN = "trpo_hyperparameters_seen"

#: constructor arguments that are not hyperparameters
NOT_HYPERPARAMETERS = {"self", "_init_setup_model"}

_PARAM = re.compile(r"^:param (\w+):\s*(.*)$")


def documented_parameters(cls: type) -> dict[str, str]:
    """``{name: description}`` from the ``:param name:`` fields of the class docstring."""
    params: dict[str, str] = {}
    current: str | None = None
    for line in (inspect.getdoc(cls) or "").splitlines():
        match = _PARAM.match(line)
        if match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None and line.startswith(" ") and line.strip():
            params[current] += " " + line.strip()
        else:
            current = None
    return params


def constructor_defaults(cls: type) -> dict[str, Any]:
    """``{name: default}`` of ``cls.__init__`` (``inspect.Parameter.empty`` when required)."""
    signature = inspect.signature(cls.__init__)
    return {name: p.default for name, p in signature.parameters.items() if name not in NOT_HYPERPARAMETERS}


def _trpo_critic() -> type:
    from sb3_trpo_critic import TRPOCritic

    return TRPOCritic


class HyperparameterTable(SphinxDirective):
    has_content = False
    option_spec: ClassVar[dict[str, Any]] = {"names": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        cls = _trpo_critic()
        docs = documented_parameters(cls)
        defaults = constructor_defaults(cls)
        names = [name.strip() for name in self.options["names"].split(",") if name.strip()]
        seen: set[str] = set()
        lines = [
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 22 12 66",
            "",
            "   * - argument",
            "     - default",
            "     - meaning (from the docstring)",
        ]
        for name in names:
            if name not in defaults:
                logger.warning("hyperparameter-table: %r is not an argument of TRPOCritic", name, location=self.get_location())
                continue
            if name not in docs:
                logger.warning(
                    "hyperparameter-table: %r has no :param: entry in TRPOCritic's docstring",
                    name,
                    location=self.get_location(),
                )
                continue
            seen.add(name)
            default = defaults[name]
            default_text = "required" if default is inspect.Parameter.empty else f"``{default!r}``"
            lines += [
                f"   * - ``{name}``",
                f"     - {default_text}",
                f"     - {docs[name]}",
            ]
        mark_seen(self.env, SEEN, seen)
        container = nodes.container(classes=["hyperparameter-table"])
        self.state.nested_parse(StringList(lines, source="TRPOCritic docstring"), self.content_offset, container)
        return [container]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("hyperparameter-table", HyperparameterTable)
    check_all_seen(
        app,
        SEEN,
        lambda: sorted(constructor_defaults(_trpo_critic())),
        "hyperparameter-table: TRPOCritic arguments missing from the reference: %s",
    )
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
