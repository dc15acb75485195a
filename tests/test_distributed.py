"""Data-parallel training under torchrun (gloo, 2 CPU processes): the same steps as one process,
rank 0's checkpoints, and a run that survives kill -9 of a rank."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
SMALL_SKETCH = ["--hidden", "64", "--mixtures", "5", "--dropout", "0", "--batch-size", "20", "--quiet"]


def run(args: list[str], torchrun: bool, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = (TORCHRUN if torchrun else [sys.executable]) + ["-m", "sketchrnn", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def parameters(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.parametrize("job", ["sketch", "text"])
def test_two_processes_step_as_one_process_on_the_whole_batch(job, shared_data, tmp_path):
    if job == "sketch":
        args = ["train", "--data", str(shared_data / "sketches" / "aaron_sheep.npz"), *SMALL_SKETCH,
                "--steps", "5", "--eval-every", "5"]
    else:  # no dropout and no state resets: nothing random but the data, which is the same
        args = ["text", "train", "--data", str(shared_data / "text" / "tinyshakespeare.txt"), "--hidden", "64",
                "--dropout", "0", "--state-reset", "0", "--steps", "5", "--minutes", "0", "--bptt", "50",
                "--batch-size", "16", "--eval-every", "5", "--precision", "fp32", "--quiet"]
    one = run([*args, "--out", str(tmp_path / "one")], torchrun=False)
    two = run([*args, "--out", str(tmp_path / "two")], torchrun=True)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a, b = parameters(tmp_path / "one" / "last.pt"), parameters(tmp_path / "two" / "last.pt")
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-5
    # One summary line (rank 0 alone reports), with the whole batch's train loss.
    lines = [json.loads(line) for line in two.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    single = json.loads(one.stdout.splitlines()[-1])
    assert lines[0]["train_loss"] == pytest.approx(single["train_loss"], rel=1e-5)
    assert lines[0]["valid_loss"] == pytest.approx(single["valid_loss"], rel=1e-5)
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "valid"] == [5]  # written once, not once per rank


def test_a_batch_that_does_not_split_evenly_is_refused(shared_data, tmp_path):
    result = run(["train", "--data", str(shared_data / "sketches" / "aaron_sheep.npz"), *SMALL_SKETCH,
                  "--batch-size", "21", "--steps", "2", "--out", str(tmp_path / "run")], torchrun=True)
    assert result.returncode != 0
    assert "a batch of 21 does not split evenly over 2 processes" in result.stderr


def _rank_pid(parent: int, rank: int) -> int | None:
    """The worker of torchrun process ``parent`` that runs ``rank``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finding torchrun's workers reads /proc (Linux)")
def test_kill_9_of_a_rank_ends_the_job_and_resume_continues(shared_data, tmp_path):
    out = tmp_path / "run"
    args = ["-m", "sketchrnn", "train", "--data", str(shared_data / "sketches" / "aaron_sheep.npz"), *SMALL_SKETCH,
            "--eval-every", "3", "--out", str(out)]
    job = subprocess.Popen(TORCHRUN + [*args, "--steps", "100000"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "last.pt").exists(), "no checkpoint within 2 minutes"
        victim = _rank_pid(job.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        _, stderr = job.communicate(timeout=60)  # torchrun takes the job down: no hang
    finally:
        job.kill()
    assert job.returncode != 0
    assert "Signal 9 (SIGKILL)" in stderr and "rank" in stderr
    step = torch.load(out / "last.pt", weights_only=True)["step"]
    assert step >= 3 and step % 3 == 0
    resumed = run(["train", "--data", str(shared_data / "sketches" / "aaron_sheep.npz"), *SMALL_SKETCH,
                   "--eval-every", "3", "--out", str(out), "--steps", str(step + 3), "--resume"], torchrun=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["step"] == step + 3
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    valid_steps = [r["step"] for r in rows if r["split"] == "valid"]
    assert valid_steps == sorted(set(valid_steps)) and valid_steps[-1] == step + 3
