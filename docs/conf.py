"""Sphinx configuration of the sb3-trpo-critic documentation.

Build (warnings are errors, as in CI):

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))  # the package, importable without installing it
sys.path.insert(0, str(DOCS / "_ext"))

import sb3_trpo_critic  # noqa: E402

project = "sb3-trpo-critic"
author = "sb3-trpo-critic contributors"
copyright = "sb3-trpo-critic contributors"
release = sb3_trpo_critic.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "hyperparameters",
    "logged_values",
    "pysource",
]

# MyST: $...$ and $$...$$ math, \begin{align} environments, ::: fences, anchors for ## and ###.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
# The docs build offline: no intersphinx inventories are fetched. References to SB3 or torch
# objects render as plain code.

html_theme = "furo"
html_title = f"sb3-trpo-critic {release}"
html_static_path: list[str] = []
