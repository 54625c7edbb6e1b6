"""Compare TRPOCritic with SB3 PPO and sb3_contrib.TRPO: a resumable sweep, and a report.

Run a sweep (one result file per (algo, env, seed), written atomically; finished runs are skipped
when the sweep is run again)::

    python -m sb3_trpo_critic.benchmarks.compare --algos trpo_critic ppo trpo \\
        --envs Pendulum-v1 HalfCheetah-v5 --seeds 5 [--timesteps N] [--workers K] \\
        [--backend local|ray] [--address ADDRESS] [--hyperparams KEY:VALUE ...] --out results/

Each run trains with that algo's rl-zoo3 hyperparameters (``trpo_critic`` from this package's
``trpo_critic.yml``, the others from rl-zoo3's files; a ``-v5`` MuJoCo env without a zoo entry uses
the ``-v4`` entry, recorded in the result), evaluates periodically on a separate env
(deterministic, VecNormalize statistics synced), and records env steps, wall-clock, fps, the
share of time spent in ``train()``, and the evaluation returns. ``--hyperparams`` replaces keys of
every run's zoo entry, written as in the hyperparameter file (``n_envs:8
policy_kwargs:"dict(log_std_init=-1)"``), as rl-zoo3's ``--hyperparams`` does; such runs get a suffix
in their name, so they never mix with runs of the unchanged entries.

Write the report (Markdown, tables and learning-curve PNGs)::

    python -m sb3_trpo_critic.benchmarks.compare report results/ [--out results/report]
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RESULT_VERSION = 1


@dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep."""

    algo: str
    env_id: str
    seed: int
    timesteps: int | None = None  # None: the zoo entry's n_timesteps
    eval_points: int = 20
    eval_episodes: int = 10
    threads: int = 1
    #: (key, value) pairs that replace keys of the zoo entry (see :func:`parse_hyperparams`)
    hyperparams: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        name = f"{self.algo}__{self.env_id}__seed{self.seed}"
        if self.hyperparams:
            digest = hashlib.sha1(repr(sorted(self.hyperparams)).encode()).hexdigest()[:8]
            name += f"__hp{digest}"
        return name


def parse_hyperparams(items: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """``KEY:VALUE`` strings to (key, value) pairs: a Python literal (``8``, ``1e-3``, ``True``) or else the string
    itself, which rl-zoo3's preprocessing evaluates where the file's entries are evaluated (``policy_kwargs``)."""
    pairs = []
    for item in items:
        key, separator, text = item.partition(":")
        if not separator or not key:
            raise ValueError(f"--hyperparams takes KEY:VALUE, got {item!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        pairs.append((key, value))
    return tuple(pairs)


@dataclass
class Curve:
    """Evaluation points of one run."""

    timesteps: list[int] = field(default_factory=list)
    wall_clock: list[float] = field(default_factory=list)
    mean_return: list[float] = field(default_factory=list)
    std_return: list[float] = field(default_factory=list)


def result_path(out: Path, spec: RunSpec) -> Path:
    return out / f"{spec.name}.json"


def is_finished(path: Path) -> bool:
    """A result file is finished when it parses and says so (a partial write never does: writes are atomic)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("finished") is True and data.get("version") == RESULT_VERSION


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
        temporary = f.name
    os.replace(temporary, path)


def _describe(value: Any) -> Any:
    """Hyperparameter values as JSON (schedules and classes by their repr)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return getattr(value, "__name__", repr(value))


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Train and evaluate one (algo, env, seed); return the result record (nothing is written here)."""
    import torch as th
    from rl_zoo3.utils import ALGOS
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    from sb3_trpo_critic.zoo import load_zoo_hyperparameters, register

    th.set_num_threads(spec.threads)
    register()
    zoo = load_zoo_hyperparameters(spec.algo, spec.env_id, dict(spec.hyperparams))
    timesteps = spec.timesteps or zoo.n_timesteps
    env: Any = make_vec_env(
        spec.env_id, n_envs=zoo.n_envs, seed=spec.seed, wrapper_class=zoo.env_wrapper, env_kwargs=zoo.env_kwargs
    )
    eval_env: Any = make_vec_env(
        spec.env_id, n_envs=1, seed=spec.seed + 10_000, wrapper_class=zoo.env_wrapper, env_kwargs=zoo.env_kwargs
    )
    if zoo.normalize:
        env = VecNormalize(env, **zoo.normalize_kwargs)
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False, **_without(zoo.normalize_kwargs, "norm_reward"))
    model: Any = ALGOS[spec.algo](zoo.policy, env, seed=spec.seed, verbose=0, **zoo.model_kwargs)

    # Time spent in train(), by wrapping the bound method.
    train_seconds = [0.0]
    original_train = model.train

    def timed_train() -> None:
        start = time.perf_counter()
        original_train()
        train_seconds[0] += time.perf_counter() - start

    model.train = timed_train

    curve = Curve()
    eval_every = max(timesteps // spec.eval_points, 1)
    clock = {"start": time.perf_counter(), "eval": 0.0}

    def evaluate(num_timesteps: int) -> None:
        start = time.perf_counter()
        sync_envs_normalization(env, eval_env)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=spec.eval_episodes, deterministic=True)
        assert isinstance(mean, float) and isinstance(std, float)
        clock["eval"] += time.perf_counter() - start
        curve.timesteps.append(int(num_timesteps))
        curve.wall_clock.append(time.perf_counter() - clock["start"] - clock["eval"])  # training time only
        curve.mean_return.append(float(mean))
        curve.std_return.append(float(std))

    class PeriodicEvaluation(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                evaluate(self.num_timesteps)
                self.next_eval += eval_every
            return True

    evaluate(0)
    model.learn(total_timesteps=timesteps, callback=PeriodicEvaluation())
    if curve.timesteps[-1] != model.num_timesteps:
        evaluate(model.num_timesteps)
    training_seconds = time.perf_counter() - clock["start"] - clock["eval"]
    env.close()
    eval_env.close()
    return {
        "version": RESULT_VERSION,
        "finished": True,
        "algo": spec.algo,
        "env_id": spec.env_id,
        "seed": spec.seed,
        "timesteps": int(model.num_timesteps),
        "zoo_entry": zoo.entry,
        "zoo_source": zoo.source,
        "zoo_note": zoo.note,
        "hyperparams_overrides": _describe(dict(spec.hyperparams)),
        "hyperparameters": _describe(
            {"policy": zoo.policy, "n_envs": zoo.n_envs, "normalize": zoo.normalize, **zoo.model_kwargs}
        ),
        "training_seconds": training_seconds,
        "train_seconds": train_seconds[0],
        "train_share": train_seconds[0] / training_seconds,
        "fps": model.num_timesteps / training_seconds,
        "final_mean_return": curve.mean_return[-1],
        "final_std_return": curve.std_return[-1],
        "eval_episodes": spec.eval_episodes,
        "curve": asdict(curve),
        "machine": {
            "python": platform.python_version(),
            "torch": th.__version__,
            "cpu_count": os.cpu_count(),
            "threads": spec.threads,
            "processor": platform.processor() or platform.machine(),
        },
    }


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _progress(total: int, initial: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of stable-baselines3[extra]
        return None
    return tqdm(total=total, initial=initial, unit="run", desc="runs")


def execute_local(specs: Sequence[RunSpec], workers: int) -> Iterator[tuple[RunSpec, dict[str, Any] | BaseException]]:
    """Run specs in a process pool (spawned processes), yielding results as they finish."""
    import multiprocessing

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_one, spec): spec for spec in specs}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()


def execute_ray(
    specs: Sequence[RunSpec], address: str | None, threads: int
) -> Iterator[tuple[RunSpec, dict[str, Any] | BaseException]]:
    """Run specs as Ray tasks (one CPU-thread each by default), on a local Ray or the cluster at ``address``."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote_run = ray.remote(num_cpus=threads)(run_one)
    pending = {remote_run.remote(spec): spec for spec in specs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        spec = pending.pop(done[0])
        try:
            yield spec, ray.get(done[0])
        except Exception as error:  # a failed run is reported, the sweep goes on
            yield spec, error


def run_sweep(
    specs: Sequence[RunSpec],
    out: Path,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    executor: Callable[..., Iterable[tuple[RunSpec, dict[str, Any] | BaseException]]] | None = None,
) -> dict[str, int]:
    """Run every spec whose result file is not finished; write each result atomically as it arrives."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [spec for spec in specs if not is_finished(result_path(out, spec))]
    skipped = len(specs) - len(todo)
    bar = _progress(len(specs), skipped)
    failed = 0
    if todo:
        if executor is not None:
            results = executor(todo)
        elif backend == "ray":
            results = execute_ray(todo, address, threads=todo[0].threads)
        else:
            results = execute_local(todo, workers)
        for spec, result in results:
            if isinstance(result, BaseException):
                failed += 1
                print(f"run {spec.name} failed: {type(result).__name__}: {result}", file=sys.stderr)
            else:
                write_atomically(result_path(out, spec), result)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return {"total": len(specs), "skipped": skipped, "ran": len(todo) - failed, "failed": failed}


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def load_results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json")) if is_finished(path)]


def iqm_with_ci(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Interquartile mean of ``scores`` (runs x tasks) and its 95% stratified bootstrap CI (rliable)."""
    from rliable import library as rly
    from rliable import metrics

    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
    point, interval = rly.get_interval_estimates({"x": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps)
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def _interpolate(xs: Sequence[float], ys: Sequence[float], grid: np.ndarray) -> np.ndarray:
    return np.interp(grid, np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))


def _plot_curves(runs: dict[str, list[dict[str, Any]]], env_id: str, x_key: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for algo, algo_runs in sorted(runs.items()):
        end = min(max(run["curve"][x_key]) for run in algo_runs)
        grid = np.linspace(0, end, 50)
        ys = np.stack([_interpolate(run["curve"][x_key], run["curve"]["mean_return"], grid) for run in algo_runs])
        mean = ys.mean(axis=0)
        # 95% CI of the mean over seeds (normal approximation; a single seed has no band)
        half = 1.96 * ys.std(axis=0, ddof=1) / math.sqrt(len(ys)) if len(ys) > 1 else np.zeros_like(mean)
        axis.plot(grid, mean, label=f"{algo} ({len(ys)} seeds)")
        axis.fill_between(grid, mean - half, mean + half, alpha=0.2)
    axis.set_xlabel({"timesteps": "env steps", "wall_clock": "training wall-clock (s)"}[x_key])
    axis.set_ylabel("evaluation return (deterministic)")
    axis.set_title(env_id)
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_report(results_folder: Path, out: Path | None = None) -> Path:
    """Write ``report.md`` and the learning-curve PNGs; return the Markdown path."""
    out = out or results_folder / "report"
    out.mkdir(parents=True, exist_ok=True)
    results = load_results(results_folder)
    if not results:
        raise SystemExit(f"no finished result files in {results_folder}")
    by_env: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for result in results:
        by_env.setdefault(result["env_id"], {}).setdefault(result["algo"], []).append(result)
    algos = sorted({result["algo"] for result in results})

    lines = [
        "# TRPOCritic vs PPO vs sb3_contrib.TRPO",
        "",
        f"{len(results)} runs from `{results_folder.name}/`. Final return: deterministic evaluation "
        "(VecNormalize statistics synced) at the end of training, over the episodes given per env; "
        "mean ± std over seeds, and the interquartile mean "
        "(IQM) with its 95% stratified-bootstrap confidence interval (rliable). fps: env steps per second of "
        "training wall-clock (evaluation excluded); train share: fraction of that time spent in `train()`.",
        "",
    ]
    normalized: dict[str, list[np.ndarray]] = {algo: [] for algo in algos}
    notes: set[str] = set()
    for env_id, runs in sorted(by_env.items()):
        env_runs = [run for algo_runs in runs.values() for run in algo_runs]
        budgets = sorted({run["timesteps"] for run in env_runs})
        episodes = sorted({run["eval_episodes"] for run in env_runs})
        lines += [
            f"## {env_id}",
            "",
            f"Budget: {', '.join(f'{b:,}' for b in budgets)} env steps. Evaluation episodes per run: "
            f"{', '.join(str(n) for n in episodes)}.",
            "",
            "| algo | seeds | final return (mean ± std) | IQM [95% CI] | fps | train share |",
            "|---|---|---|---|---|---|",
        ]
        finals = {algo: np.array([run["final_mean_return"] for run in algo_runs]) for algo, algo_runs in runs.items()}
        low = min(float(f.min()) for f in finals.values())
        high = max(float(f.max()) for f in finals.values())
        for algo in sorted(runs):
            final = finals[algo]
            iqm, ci_low, ci_high = iqm_with_ci(final[:, None])
            fps = np.mean([run["fps"] for run in runs[algo]])
            share = np.mean([run["train_share"] for run in runs[algo]])
            std = final.std(ddof=1) if len(final) > 1 else 0.0
            lines.append(
                f"| {algo} | {len(final)} | {final.mean():.1f} ± {std:.1f} | {iqm:.1f} [{ci_low:.1f}, {ci_high:.1f}] "
                f"| {fps:.0f} | {share:.2f} |"
            )
            normalized[algo].append((final - low) / (high - low) if high > low else np.ones_like(final))
            for run in runs[algo]:
                if run.get("zoo_note"):
                    notes.add(f"{algo} on {env_id}: {run['zoo_note']}")
                if run.get("hyperparams_overrides"):
                    notes.add(f"{algo} on {env_id}: entry changed by {run['hyperparams_overrides']}")
        lines.append("")
        for x_key, suffix in (("timesteps", "steps"), ("wall_clock", "time")):
            png = f"{env_id}_{suffix}.png"
            _plot_curves(runs, env_id, x_key, out / png)
            lines.append(f"![{env_id} vs {x_key}]({png})")
        lines.append("")

    complete = [algo for algo in algos if len(normalized[algo]) == len(by_env)]
    if len(by_env) > 1 and complete:
        n_seeds = min(len(scores) for algo in complete for scores in normalized[algo])
        lines += [
            "## Aggregate over envs",
            "",
            "Scores normalized per env to [0, 1] by the lowest and highest final return of any run in that env "
            f"(first {n_seeds} seeds of each algo), then aggregated with rliable over runs x envs.",
            "",
            "| algo | envs | IQM [95% CI] | mean normalized score |",
            "|---|---|---|---|",
        ]
        for algo in complete:
            matrix = np.stack([scores[:n_seeds] for scores in normalized[algo]], axis=1)  # runs x tasks
            iqm, ci_low, ci_high = iqm_with_ci(matrix)
            lines.append(f"| {algo} | {matrix.shape[1]} | {iqm:.2f} [{ci_low:.2f}, {ci_high:.2f}] | {matrix.mean():.2f} |")
        lines.append("")
    if notes:
        lines += ["## Hyperparameter notes", "", *[f"- {note}" for note in sorted(notes)], ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def build_specs(args: argparse.Namespace) -> list[RunSpec]:
    return [
        RunSpec(algo, env_id, seed, args.timesteps, args.eval_points, args.eval_episodes, args.threads, args.hyperparams)
        for env_id in args.envs
        for algo in args.algos
        for seed in range(args.seed_offset, args.seed_offset + args.seeds)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        parser = argparse.ArgumentParser(prog="compare report", description="Write the Markdown report of a sweep")
        parser.add_argument("results", type=Path)
        parser.add_argument("--out", type=Path, default=None, help="default: RESULTS/report")
        args = parser.parse_args(argv[1:])
        print(write_report(args.results, args.out))
        return 0

    parser = argparse.ArgumentParser(
        prog="python -m sb3_trpo_critic.benchmarks.compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--algos", nargs="+", default=["trpo_critic", "ppo", "trpo"])
    parser.add_argument("--envs", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per (algo, env)")
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=None, help="default: each zoo entry's n_timesteps")
    parser.add_argument("--eval-points", type=int, default=20, help="evaluations per run (plus one at step 0)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="parallel runs (local backend)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run; default: cores / workers")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    parser.add_argument(
        "--hyperparams",
        nargs="+",
        default=[],
        metavar="KEY:VALUE",
        help='replace keys of every run\'s zoo entry, e.g. n_envs:8 policy_kwargs:"dict(log_std_init=-1)"',
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        args.hyperparams = parse_hyperparams(args.hyperparams)
    except ValueError as error:
        parser.error(str(error))
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // max(args.workers, 1))
    for name in ("seeds", "workers", "eval_points", "eval_episodes", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    summary = run_sweep(build_specs(args), args.out, args.workers, args.backend, args.address)
    print(
        f"{summary['ran']} runs done, {summary['skipped']} already finished, {summary['failed']} failed; results in {args.out}"
    )
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
