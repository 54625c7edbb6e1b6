"""Sphinx configuration of the sb3-trpo-critic documentation.

Build (warnings are errors, as in CI):

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sphinxcontrib.katex import KaTeXError, KaTeXServer

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
    "sphinxcontrib.katex",
    "sphinx.ext.viewcode",
    "hyperparameters",
    "logged_values",
    "pysource",
]

# MyST: $...$ and $$...$$ math, \begin{align} environments, ::: fences, anchors for ## and ###.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "node_modules", "Thumbs.db", ".DS_Store"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"
# The docs build offline: no intersphinx inventories are fetched. References to SB3 or torch
# objects render as plain code.

html_theme = "furo"
html_title = f"sb3-trpo-critic {release}"
html_static_path: list[str] = []

# Math: rendered to HTML at build time by KaTeX (sphinxcontrib-katex, running node), so the pages
# need no JavaScript and nothing from a CDN: the KaTeX CSS and fonts are copied from the katex npm
# package (docs/package.json, pinned in docs/package-lock.json) into the built site's _static/katex/.
# The package is installed into docs/node_modules by `npm ci` (run here when it is missing).
KATEX_DIST = DOCS / "node_modules" / "katex" / "dist"


def _install_katex() -> None:
    if (KATEX_DIST / "katex.min.js").is_file():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError(
            "the docs render their math with KaTeX at build time, which needs node and npm "
            "(e.g. apt-get install nodejs npm), then: npm ci --prefix docs"
        )
    # Into a folder of its own, then moved into place: builds started together (pytest -n 2)
    # neither see a half-installed package nor remove each other's.
    staging = Path(tempfile.mkdtemp(prefix=".katex-", dir=DOCS))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(DOCS / name, staging / name)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=staging, check=True)
        try:
            (staging / "node_modules").rename(DOCS / "node_modules")
        except OSError:
            if not (KATEX_DIST / "katex.min.js").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _start_katex_server(cls, rundir: Path, timeout: float):
    """KaTeXServer.start_server_process, retrying the connection while node binds but does not listen yet.

    sphinxcontrib-katex 0.9.11 connects as soon as the socket file exists, which is between node's
    bind() and listen(): on a busy machine the build then fails with ConnectionRefusedError.
    """
    socket_path = rundir / "katex.sock"
    command = cls.build_command(socket=socket_path)
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=rundir)
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(socket_path))
            return process, sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if process.poll() is not None:
                raise KaTeXError(f"the KaTeX server (node) exited with status {process.returncode}") from None
            if time.monotonic() > deadline:
                process.kill()
                raise cls.timeout_error(timeout) from None
            time.sleep(0.005)


_install_katex()
KaTeXServer.start_server_process = classmethod(_start_katex_server)
html_math_renderer = "katex"
katex_prerender = True
katex_js_path = str(KATEX_DIST / "katex.min.js")  # the renderer node runs
katex_css_path = "katex/katex.min.css"  # under _static/, copied there by _copy_katex_assets


def _copy_katex_assets(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / "katex"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(KATEX_DIST / "katex.min.css", target / "katex.min.css")
    shutil.copytree(KATEX_DIST / "fonts", target / "fonts", dirs_exist_ok=True)


def setup(app):
    app.connect("build-finished", _copy_katex_assets)
