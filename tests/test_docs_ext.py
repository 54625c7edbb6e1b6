"""The docs' Sphinx extensions: code is included by object, the metrics tables come from the library's table,
and a wrong name fails a ``-W`` build instead of showing the wrong thing."""

import importlib.util
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sb3_trpo_critic import TRPOCritic
from sb3_trpo_critic.logged import GROUPS, LOGGED_VALUES

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "docs" / "_ext"

needs_sphinx = pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None,
    reason='Sphinx is not installed: pip install -e ".[docs]"',
)


@pytest.fixture
def pysource():
    pytest.importorskip("sphinx")
    sys.path.insert(0, str(EXT))
    try:
        import pysource

        yield pysource
    finally:
        sys.path.remove(str(EXT))


def test_the_policy_step_numbers_its_steps_1_to_5_and_each_excerpt_is_one_step(pysource):
    source = textwrap.dedent(inspect.getsource(TRPOCritic._policy_step))
    excerpts = [pysource.step_lines(source, step) for step in range(1, 6)]
    for step, excerpt in enumerate(excerpts, start=1):
        assert excerpt.startswith(f"# {step}. "), excerpt
        assert f"# {step + 1}. " not in excerpt
    assert "self._fisher_vector_product(" in excerpts[1] and "self._solve(" in excerpts[2]
    assert "self._line_search(" in excerpts[4] and excerpts[4].rstrip().endswith(")")
    with pytest.raises(ValueError, match="no step 6"):
        pysource.step_lines(source, 6)  # step 6 is _fit_critic, called by train()
    with pytest.raises(ValueError, match="not 1, 2, 3"):
        pysource.step_lines("# 1. one\nx = 1\n# 3. three\n", 1)


def test_the_metrics_table_rows_are_well_formed():
    keys = [row.key for row in LOGGED_VALUES]
    assert len(keys) == len(set(keys)) and all(key.startswith("train/") for key in keys)
    assert {row.group for row in LOGGED_VALUES} == set(GROUPS)
    for row in LOGGED_VALUES:
        assert row.meaning and "|" not in row.meaning.replace("\\|", ""), row.key  # one Markdown table cell
        assert row.exclude in (None, "tensorboard"), row.key
        if callable(row.source):
            assert row.source.__doc__, row.key  # the docs' "computed from" cell


def build(tmp_path: Path, page: str) -> subprocess.CompletedProcess:
    """A one-page Sphinx project with the docs' extensions, built with -W."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nsys.path.insert(0, {str(EXT)!r})\n"
        'extensions = ["myst_parser", "pysource", "logged_values"]\n'
        'suppress_warnings = ["ref.ref"]  # the tables link to labels of the real docs\n'
    )
    (src / "index.md").write_text(page)
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_sphinx
@pytest.mark.parametrize(
    ("directive", "message"),
    [
        ("```{pysource} sb3_trpo_critic.trpo_critic.TRPOCritic._no_such_method\n```", "cannot show the source"),
        ("```{pysource} sb3_trpo_critic.trpo_critic.TRPOCritic._policy_step\n:step: 7\n```", "no step 7"),
        ("```{logged-values} no such group\n```", "not a group"),
        ("```{logged-values} policy step\n```", "missing from the docs' tables: train/value_loss_before"),
    ],
)
@pytest.mark.slow
def test_a_wrong_name_fails_the_build(tmp_path, directive, message):
    result = build(tmp_path, f"# Page\n\n{directive}\n")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@needs_sphinx
@pytest.mark.slow
def test_a_right_name_builds(tmp_path):
    tables = "\n\n".join(f"```{{logged-values}} {group}\n```" for group in GROUPS)
    page = f"# Page\n\n```{{pysource}} sb3_trpo_critic.trpo_critic.TRPOCritic._policy_step\n:step: 3\n```\n\n{tables}\n"
    result = build(tmp_path, page)
    assert result.returncode == 0, result.stdout + result.stderr
    html = (tmp_path / "html" / "index.html").read_text()
    assert "_policy_step, step 3" in html and "_solve" in html and "evaluate_candidate" not in html
    assert all(f'<span class="pre">{row.key.removeprefix("train/")}</span>' in html for row in LOGGED_VALUES)
