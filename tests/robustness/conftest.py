"""Shared by the robustness tests of the analysis tools: one tiny real run (the checks every bad-input
case makes are in guard_checks.py)."""
import pytest
import torch

import train
from data import prepare


@pytest.fixture(scope="session")
def tool_run(tmp_path_factory):
    """(run directory, its dataset): a 32-step train.py run of a 1 x 16 model on 200 kB of the standard
    library; checkpoints 1, 2, 4, 8, 16, 32, records at every step, a probe of 2 x 16 tokens."""
    folder = tmp_path_factory.mktemp("tool_run")
    data = str(folder / "data")
    prepare.build_stdlib(data, max_bytes=200_000)
    config = train.TrainConfig(out_dir=str(folder / "run"), dataset=data, n_layer=1, n_head=1, n_embd=16,
                               block_size=16, batch_size=4, n_probe=2, max_iters=32, warmup_iters=4, progress=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert not train.train(config)
    finally:
        torch.set_num_threads(threads)
    return str(folder / "run"), data
