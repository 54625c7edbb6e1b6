"""The documentation builds without warnings, and the examples it shows run, at tiny budgets."""

import html
import importlib.util
import math
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


def test_custom_policy_example(capsys):
    mean_return = run_example("custom_policy.py", ["--timesteps", "1024", "--eval-episodes", "1"])
    assert math.isfinite(mean_return)
    out = capsys.readouterr().out
    assert "shared extractor: its 4 parameter tensors belong to the actor" in out
    assert "actor parameters:" in out and "Pendulum-v1: mean return" in out


def test_tensorboard_logging_example(tmp_path, capsys):
    pytest.importorskip("tensorboard", reason='TensorBoard is not installed: pip install -e ".[docs]"')
    log_dir = tmp_path / "tb"
    summary = run_example("tensorboard_logging.py", ["--timesteps", "4096", "--log-dir", str(log_dir)])
    assert summary["updates"] >= 1
    assert 0.0 <= summary["accepted_fraction"] <= 1.0
    if summary["accepted_fraction"] > 0:
        assert 0.0 < summary["mean_kl_over_target"] <= 1.0  # accepted steps stay inside the trust region
    assert list(log_dir.glob("events.out.tfevents.*"))
    assert "tensorboard --logdir" in capsys.readouterr().out


def test_from_sb3_contrib_translation():
    from gymnasium import spaces

    from sb3_trpo_critic import from_sb3_contrib as translate

    box6 = spaces.Box(-1.0, 1.0, (6,))
    assert translate({"target_kl": 0.04}, box6)["target_kl"] == pytest.approx(0.24)
    same = translate({"target_kl": 0.04, "cg_damping": 0.1}, box6, same_step=True)
    assert same["target_kl"] == pytest.approx(0.24) and same["cg_damping"] == pytest.approx(0.6)
    assert translate({}, box6) == {"target_kl": pytest.approx(0.06)}  # sb3_contrib's default 0.01
    assert translate({"target_kl": 0.02}, spaces.Discrete(4))["target_kl"] == 0.02
    assert translate({"target_kl": 0.01}, spaces.MultiBinary(3))["target_kl"] == pytest.approx(0.03)


def test_from_sb3_contrib_translation_takes_the_same_step():
    """The docs' claim: with cg_damping scaled by d, TRPOCritic's Fisher system is d times sb3_contrib's,
    so conjugate gradient finds the same direction up to the factor d (and beta scales it back)."""
    import torch as th
    from stable_baselines3.common.distributions import DiagGaussianDistribution, kl_divergence

    from sb3_trpo_critic.trust_region import conjugate_gradient, make_fisher_vector_product

    d, damping = 6, 0.1
    net = th.nn.Linear(5, d)
    log_std = th.nn.Parameter(0.3 * th.randn(d))
    params = [*net.parameters(), log_std]
    obs = th.randn(64, 5)

    def distribution() -> DiagGaussianDistribution:
        return DiagGaussianDistribution(d).proba_distribution(net(obs), log_std)

    with th.no_grad():
        old = distribution()
    g = th.cat([p.reshape(-1) for p in th.autograd.grad(distribution().log_prob(th.randn(64, d)).mean(), params)])

    def averaged_fvp(v: th.Tensor) -> th.Tensor:
        # sb3_contrib.TRPO's product: Hessian of its KL (new || old), averaged over the d dimensions
        kl = kl_divergence(distribution(), old).mean()
        grad = th.cat([x.reshape(-1) for x in th.autograd.grad(kl, params, create_graph=True)])
        return th.cat([x.reshape(-1) for x in th.autograd.grad(grad.dot(v), params)]) + damping * v

    ours = conjugate_gradient(make_fisher_vector_product(distribution(), params, d * damping), g, 500, 1e-24)
    theirs = conjugate_gradient(averaged_fvp, g, 500, 1e-24)
    assert th.allclose(d * ours.x, theirs.x, rtol=1e-3, atol=1e-6)
    # beta * x: beta = sqrt(2 delta / x^T A x) with delta and A both scaled by d gives the same step
    ours_fx = make_fisher_vector_product(distribution(), params, d * damping)(ours.x)
    ours_step = th.sqrt(2 * (d * 0.01) / ours.x.dot(ours_fx)) * ours.x
    theirs_step = th.sqrt(2 * 0.01 / theirs.x.dot(averaged_fvp(theirs.x))) * theirs.x
    assert th.allclose(ours_step, theirs_step, rtol=1e-3, atol=1e-6)


def test_from_sb3_contrib_example(capsys):
    pytest.importorskip("sb3_contrib")
    pytest.importorskip("mujoco", reason='MuJoCo is not installed: pip install -e ".[mujoco]"')
    mean_return = run_example("from_sb3_contrib.py", ["--timesteps", "2048", "--eval-episodes", "1"])
    assert math.isfinite(mean_return)
    out = capsys.readouterr().out
    assert "TRPOCritic:       target_kl=0.24, cg_damping=0.1" in out


# A repository path of a Python file: written in a command (`python benchmarks/experiments/x.py`) or
# named in the text, in backticks or parentheses. docs/ is included so that a path to where a script
# used to be is reported, not skipped.
PY_PATH = re.compile(r"(?<![\w./-])((?:examples|sb3_trpo_critic|benchmarks|docs|tests)/[\w./-]*\.py)\b")


def test_docs_commands_name_real_files():
    """Every `python <path>.py` and `python -m sb3_trpo_critic...` command in the docs and the README names a real file."""
    commands, modules = [], []
    for page in [ROOT / "README.md", *DOCS.rglob("*.md")]:
        if "_build" in page.parts:
            continue
        for line in page.read_text().splitlines():
            commands += [(page.name, path) for path in PY_PATH.findall(line)]
            words = [word.strip("`") for word in line.split()]
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
