import os

import pytest
import torch as th

# Two CPU cores run two test workers: one thread each.
th.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    th.manual_seed(0)
    yield
