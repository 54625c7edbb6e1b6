"""The documentation builds without warnings, and the examples it shows run, at tiny budgets."""

import html
import importlib.util
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"

needs_sphinx = pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None,
    reason='Sphinx is not installed: pip install -e ".[docs]"',
)


def html_text(path: Path) -> str:
    """The text of an HTML page, without its tags (highlighted code is split into spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text()))


def run_example(name: str, argv: list[str]):
    return runpy.run_path(str(EXAMPLES / name))["main"](argv)


@needs_sphinx
@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    page = html_text(tmp_path / "html" / "hyperparameters.html")
    # The hyperparameter tables are generated from the signature and the docstring.
    assert "cg_residual_tol" in page and "Trust region radius" in page
    method = html_text(tmp_path / "html" / "method.html")
    # Code is included from the source: the conjugate gradient and the critic epochs are on the page.
    assert "def conjugate_gradient(" in method and "n_critic_updates" in method


def test_hyperparameter_tables_cover_every_argument():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        hyperparameters = pytest.importorskip("hyperparameters")
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    from sb3_trpo_critic import TRPOCritic

    documented = hyperparameters.documented_parameters(TRPOCritic)
    defaults = hyperparameters.constructor_defaults(TRPOCritic)
    assert set(defaults) <= set(documented), set(defaults) - set(documented)
    assert defaults["target_kl"] is None and "summed over action" in documented["target_kl"]
    assert "0.01 per action" in documented["target_kl"]
    page = (DOCS / "hyperparameters.md").read_text()
    listed = {name.strip() for line in page.splitlines() if ":names:" in line for name in line.split(":names:")[1].split(",")}
    assert listed == set(defaults)


# A repository path of a Python file: written in a command (`python benchmarks/experiments/x.py`) or
# named in the text, in backticks or parentheses. docs/ is included so that a path to where a script
# used to be is reported, not skipped.
PY_PATH = re.compile(r"(?<![\w./-])((?:examples|sb3_trpo_critic|benchmarks|docs|tests)/[\w./-]*\.py)\b")


def test_docs_commands_name_real_files():
    """Every `python <path>.py` and `python -m sb3_trpo_critic...` command in the docs and the README names a real file."""
    commands, modules = [], []
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        if {"_build", "node_modules"} & set(page.parts):
            continue
        for line in page.read_text().splitlines():
            commands += [(page.name, path) for path in PY_PATH.findall(line)]
            # a module named in prose ends at its closing backtick or punctuation
            words = [word.strip("`,.:;()") for word in line.split()]
            for index, word in enumerate(words):
                following = words[index + 1] if index + 1 < len(words) else ""
                if word == "-m" and following.startswith("sb3_trpo_critic"):
                    modules.append((page.name, following))
    assert modules
    # the experiment scripts' commands (docs/benchmarks/index.md, docs/recurrent.md, the README) are checked
    assert {path for _, path in commands if path.startswith("benchmarks/experiments/")} >= {
        "benchmarks/experiments/mlp_fvp.py",
        "benchmarks/experiments/recurrent_fold.py",
        "benchmarks/experiments/block_cg.py",
    }
    missing = [(page, path) for page, path in commands if not (ROOT / path).is_file()]
    missing += [(page, module) for page, module in modules if importlib.util.find_spec(module) is None]
    assert not missing


def test_experiment_scripts_name_themselves_at_their_place():
    """Each experiment script's usage names the path it is at (run from the repository root), and every
    repository path of a Python file it names is a real file."""
    scripts = sorted((ROOT / "benchmarks" / "experiments").glob("*.py"))
    assert scripts
    for script in scripts:
        named = set(PY_PATH.findall(script.read_text()))
        assert script.relative_to(ROOT).as_posix() in named, script.name
        assert all((ROOT / path).is_file() for path in named), (script.name, named)
