"""The command line the timing scripts beside this one share (benchmarks/experiments/fisher_subsampling.py and
benchmarks/experiments/recurrent_fold.py); not a script itself.

This module is benchmarks/experiments/timing_cli.py, imported as ``from timing_cli import parse_timing_args``: a
script's directory is on ``sys.path`` when it runs.
"""

import argparse

import torch as th


def parse_timing_args(docstring: str | None, default_repetitions: int) -> int:
    """
    Parse a timing script's command line, ``[--repetitions N]``, and set torch to one thread, as its measurements are
    taken.

    :param docstring: the script's module docstring, whose first line describes it in ``--help``
    :param default_repetitions: how many times each variant is timed when ``--repetitions`` is not given
    :return: the number of repetitions
    """
    parser = argparse.ArgumentParser(description=docstring.splitlines()[0] if docstring else None)
    parser.add_argument("--repetitions", type=int, default=default_repetitions)
    repetitions: int = parser.parse_args().repetitions
    th.set_num_threads(1)
    return repetitions
