"""The report of a sweep: statistics (rliable's IQM and bootstrap intervals), learning-curve plots, Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sb3_trpo_critic.benchmarks.results import DEFAULT_VEC_ENV, LoadedResults, ResultStore, RunResult


def load_results(folder: Path) -> LoadedResults:
    """
    The finished results of a folder, and the files that are not (each named in a warning).

    :param folder: A results folder
    :return: See :meth:`ResultStore.load <sb3_trpo_critic.benchmarks.results.ResultStore.load>`
    """
    return ResultStore(folder).load()


def iqm_with_ci(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """
    Interquartile mean of ``scores`` and its 95% stratified bootstrap confidence interval (rliable).

    :param scores: Scores, runs x tasks
    :param reps: Bootstrap replications
    :param seed: Seed of numpy's global generator, which rliable's bootstrap draws from
    :return: The IQM, and the low and high ends of the interval
    """
    from rliable import library as rly
    from rliable import metrics

    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global generator
    point, interval = rly.get_interval_estimates({"x": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=reps)
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def _interpolate(xs: Sequence[float], ys: Sequence[float], grid: np.ndarray) -> np.ndarray:
    return np.interp(grid, np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))


def _curve_x(run: RunResult, x_key: str) -> Sequence[float]:
    return run.curve.timesteps if x_key == "timesteps" else run.curve.wall_clock


def plot_curves(runs: dict[str, list[RunResult]], env_id: str, x_key: str, path: Path) -> None:
    """
    Plot the mean evaluation return of each algorithm over seeds, with a 95% band, to a PNG.

    :param runs: The runs of one environment, by algorithm
    :param env_id: The environment (the title)
    :param x_key: ``timesteps`` (env steps) or ``wall_clock`` (training seconds)
    :param path: The PNG to write
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for algo, algo_runs in sorted(runs.items()):
        end = min(max(_curve_x(run, x_key)) for run in algo_runs)
        grid = np.linspace(0, end, 50)
        ys = np.stack([_interpolate(_curve_x(run, x_key), run.curve.mean_return, grid) for run in algo_runs])
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


#: The algorithms a report judges against the others, the first present in an env: this package's own
#: (RecurrentTRPOCritic first: where it runs, TRPOCritic is its memoryless baseline).
SUBJECTS = ("recurrent_trpo_critic", "trpo_critic")


def verdict(subject: str, other: str, intervals: dict[str, tuple[float, float, float]]) -> str:
    """
    How ``subject`` compares with ``other`` on one env, by the IQM of final returns and its 95% CI:
    it *wins* if its interval lies wholly above the other's, *loses* if wholly below, and *ties*
    (statistically) if the intervals overlap.

    :param subject: The judged algorithm
    :param other: The algorithm it is compared with
    :param intervals: ``(IQM, CI low, CI high)`` of each algorithm
    :return: One line, e.g. ``wins against ppo: IQM 4907 [4718, 5029] vs 2769 [1771, 4741]``
    """
    iqm, low, high = intervals[subject]
    other_iqm, other_low, other_high = intervals[other]
    outcome = "wins against" if low > other_high else "loses to" if high < other_low else "ties with"
    return (
        f"{outcome} {other}: IQM {iqm:.1f} [{low:.1f}, {high:.1f}] vs {other_iqm:.1f} [{other_low:.1f}, {other_high:.1f}]"
        + (" (the intervals overlap)" if outcome == "ties with" else "")
    )


def _engines_sentence(engines: list[str]) -> str:
    """What the report says of the engines of the runs' environments (nothing when all are gymnasium's)."""
    if engines == [DEFAULT_VEC_ENV]:
        return ""
    if len(engines) == 1:
        return f" Environments: {engines[0]}'s (compare these returns only with runs on {engines[0]})."
    return f" The runs are on different engines ({', '.join(engines)}): each algo's rows are per engine, `algo (engine)`."


def write_report(results_folder: Path, out: Path | None = None) -> Path:
    """
    Write ``report.md`` and the learning-curve PNGs of a results folder.

    Files of the folder that are not finished results are named in a warning and listed in the
    report under "Result files not read". Runs on different engines of the environments (``vec_env``:
    gymnasium's, EnvPool's) are never pooled: in a folder that holds both, an algorithm's rows are per engine.

    The report's first line names the results folder as given when it is a relative path (e.g.
    ``benchmarks/results/comparison_1m/``, from where the command ran), so that a reader can find the
    files; an absolute path is named by its last part only.

    :param results_folder: The sweep's results folder
    :param out: The report's folder; default: ``results_folder/report``
    :return: The Markdown file
    :raises SystemExit: if the folder has no finished result
    """
    out = out or results_folder / "report"
    loaded = load_results(results_folder)
    results = loaded.results
    if not results:
        raise SystemExit(f"no finished result files in {results_folder} ({len(loaded.unreadable)} files not read)")
    out.mkdir(parents=True, exist_ok=True)
    # Runs on different engines of the environments (EnvPool's MuJoCo is its own implementation) are not pooled.
    engines = sorted({result.vec_env for result in results})

    def label(result: RunResult) -> str:
        return result.algo if len(engines) == 1 else f"{result.algo} ({result.vec_env})"

    by_env: dict[str, dict[str, list[RunResult]]] = {}
    for result in results:
        by_env.setdefault(result.env_id, {}).setdefault(label(result), []).append(result)
    algos = sorted({label(result) for result in results})
    shown = results_folder.name if results_folder.is_absolute() else results_folder.as_posix()

    lines = [
        f"# {' vs '.join(algos)}",
        "",
        f"{len(results)} runs from `{shown}/`. Final return: deterministic evaluation "
        "(VecNormalize statistics synced) at the end of training, over the episodes given per env; "
        "mean ± std over seeds, and the interquartile mean "
        "(IQM) with its 95% stratified-bootstrap confidence interval (rliable). fps: env steps per second of "
        "training wall-clock (evaluation excluded); train share: fraction of that time spent in `train()`."
        + _engines_sentence(engines),
        "",
    ]
    if loaded.unreadable:
        lines += [
            "## Result files not read",
            "",
            f"{len(loaded.unreadable)} `.json` files of `{shown}/` are not finished results and are "
            "left out of everything below:",
            "",
            *[f"- `{item.path.name}`: {item.reason}" for item in loaded.unreadable],
            "",
        ]
    normalized: dict[str, list[np.ndarray]] = {algo: [] for algo in algos}
    notes: set[str] = set()
    for env_id, runs in sorted(by_env.items()):
        env_runs = [run for algo_runs in runs.values() for run in algo_runs]
        budgets = sorted({run.timesteps for run in env_runs})
        episodes = sorted({run.eval_episodes for run in env_runs})
        lines += [
            f"## {env_id}",
            "",
            f"Budget: {', '.join(f'{b:,}' for b in budgets)} env steps. Evaluation episodes per run: "
            f"{', '.join(str(n) for n in episodes)}.",
            "",
            "| algo | seeds | final return (mean ± std) | IQM [95% CI] | fps | train share |",
            "|---|---|---|---|---|---|",
        ]
        finals = {algo: np.array([run.final_mean_return for run in algo_runs]) for algo, algo_runs in runs.items()}
        low = min(float(f.min()) for f in finals.values())
        high = max(float(f.max()) for f in finals.values())
        intervals: dict[str, tuple[float, float, float]] = {}
        for algo in sorted(runs):
            final = finals[algo]
            iqm, ci_low, ci_high = intervals[algo] = iqm_with_ci(final[:, None])
            fps = np.mean([run.fps for run in runs[algo]])
            share = np.mean([run.train_share for run in runs[algo]])
            std = final.std(ddof=1) if len(final) > 1 else 0.0
            lines.append(
                f"| {algo} | {len(final)} | {final.mean():.1f} ± {std:.1f} | {iqm:.1f} [{ci_low:.1f}, {ci_high:.1f}] "
                f"| {fps:.0f} | {share:.2f} |"
            )
            normalized[algo].append((final - low) / (high - low) if high > low else np.ones_like(final))
            for run in runs[algo]:
                if run.zoo_note:
                    notes.add(f"{algo} on {env_id}: {run.zoo_note}")
                if run.hyperparams_overrides:
                    notes.add(f"{algo} on {env_id}: entry changed by {run.hyperparams_overrides}")
        lines.append("")
        subject = next((algo for algo in SUBJECTS if algo in runs), None)
        if subject is not None and len(runs) > 1:
            lines += [f"- {subject} {verdict(subject, other, intervals)}" for other in sorted(runs) if other != subject]
            lines.append("")
        for x_key, suffix in (("timesteps", "steps"), ("wall_clock", "time")):
            png = f"{env_id}_{suffix}.png"
            plot_curves(runs, env_id, x_key, out / png)
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
