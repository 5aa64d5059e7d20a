"""On a machine with CUDA: train.py on one GPU (bf16 autocast) and on two under torchrun (DDP over NCCL),
with per-token records and an exact resume, and zsl.py on the GPU. Skipped where CUDA is absent; the
same code paths run on the CPU in test_train.py, so only the device-specific parts are new here."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from data import prepare

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=8", "--n_probe=4",
        "--warmup_iters=5", "--progress=false", "--eval_per_octave=2", "--n_eval=4"]

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    prepare.build_stdlib(str(folder), max_bytes=400_000)
    return str(folder)


def losses(run_dir):
    with open(os.path.join(run_dir, "log.csv")) as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def run(*command):
    result = subprocess.run(list(command), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_one_gpu_bf16_learns_records_and_resumes(dataset, tmp_path):
    out = str(tmp_path / "gpu")
    run(sys.executable, "train.py", *TINY, f"--dataset={dataset}", f"--out_dir={out}", "--max_iters=40",
        "--learning_rate=1e-2", "--device=cuda")
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["device"] == "cuda"
    curve = losses(out)
    assert len(curve) == 40 and np.mean(curve[-5:]) < curve[0] - 1.0
    record = np.load(os.path.join(out, "records", "step_000032.npz"))
    assert record["probe_after"].dtype == np.float32 and np.isfinite(record["probe_after"]).all()
    os.remove(os.path.join(out, "checkpoints", "step_000040.pt"))
    run(sys.executable, "train.py", f"--out_dir={out}", "--resume")
    assert losses(out) == curve  # the RNG states of CPU and GPU come back: the same steps again
    run(sys.executable, "zsl.py", out, "--device=cuda", "--no_progress", "--max_checkpoints=2")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_ddp_over_nccl(dataset, tmp_path):
    out = str(tmp_path / "ddp")
    run(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py", *TINY,
        f"--dataset={dataset}", f"--out_dir={out}", "--max_iters=12", "--device=cuda")
    with open(os.path.join(out, "config.json")) as f:
        info = json.load(f)
    assert info["world_size"] == 2 and info["device"].startswith("cuda")
    assert len(losses(out)) == 12
