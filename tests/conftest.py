"""Shared test setup: one torch thread (steady timings on 2-core machines), CPU always and CUDA when present."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Each test that takes `device` runs on the CPU, and again on CUDA when a GPU is present."""
    return torch.device(request.param)
