"""The command line: help on every flag, clear refusals, a real run, Ctrl-C exits 0."""

import argparse
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from sketchrnn.cli import build_parser, main
from sketchrnn.core.engine import load_checkpoint


def all_parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


def test_every_flag_has_help():
    for parser in all_parsers(build_parser()):
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{parser.prog} {action.option_strings} has no help"


def test_unknown_cell_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit, match="unknown cell.*lstmm.*choose from rnn, gru, lstm"):
        main(["rnn", "gradient-flow", "--cells", "rnn,lstmm"])


def test_gradient_flow_writes_svg_and_prints_the_numbers(tmp_path, capsys):
    out = tmp_path / "flow.svg"
    assert main(["rnn", "gradient-flow", "--cells", "rnn,gru", "--steps", "30", "--hidden", "16",
                 "--train-steps", "5", "--out", str(out), "--quiet"]) == 0
    svg = out.read_text()
    assert svg.startswith("<?xml") and svg.count("<polyline") == 4 and "gru at init" in svg
    printed = capsys.readouterr().out
    assert "lag 20" in printed and printed.count("rnn ") >= 2


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_during_training_saves_exits_zero_and_resumes(tmp_path, capsys, stop):
    out = tmp_path / "run"
    command = ["rnn", "adding-task", "--length", "30", "--hidden", "16", "--eval-every", "20", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sketchrnn", *command, "--steps", "100000", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(stop)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "interrupted" in output and (out / "last.pt").exists()
    assert main([*command, "--steps", "400", "--resume", "--quiet", "--json"]) == 0
    assert '"step": 400' in capsys.readouterr().out


def test_resume_gaps_are_closed(tmp_path, capsys):
    """Resuming before any checkpoint says so; a save cut short leaves no temp file behind; rows
    logged after the checkpoint are not logged twice; --quiet prints strict JSON."""
    out = tmp_path / "run"
    command = ["rnn", "adding-task", "--length", "10", "--hidden", "8", "--eval-every", "4", "--out", str(out)]
    assert main([*command, "--steps", "2", "--resume", "--quiet"]) == 2
    assert "nothing to resume yet" in capsys.readouterr().err
    assert main([*command, "--steps", "8", "--quiet"]) == 0
    capsys.readouterr()
    (out / "last.ptq1w2e3.tmp").write_bytes(b"half a checkpoint")
    with (out / "metrics.jsonl").open("a") as log:  # steps a killed run logged past its checkpoint
        log.write(json.dumps({"step": 9, "split": "train", "loss": 1.0}) + "\n")
    assert main([*command, "--steps", "12", "--resume", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert summary["step"] == 12 and not list(out.glob("*.tmp"))
    assert steps.count(9) == 0 and steps == sorted(steps)


def test_kill_9_then_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    """SIGKILL gives no chance to save: the run resumes from its last checkpoint, and because the
    data, dropout and RNG are functions of the step, it ends with the same weights to the bit."""
    command = ["rnn", "adding-task", "--length", "20", "--hidden", "16", "--eval-every", "10", "--quiet"]
    assert main([*command, "--steps", "300", "--out", str(tmp_path / "straight")]) == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "sketchrnn", *command, "--steps", "100000", "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (killed / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)  # into the steps after the checkpoint, maybe inside the next save
    proc.kill()
    proc.wait(10)
    assert load_checkpoint(killed / "last.pt", "adding")["step"] < 300
    assert main([*command, "--steps", "300", "--out", str(killed), "--resume"]) == 0
    straight = load_checkpoint(tmp_path / "straight" / "last.pt", "adding")["model"]
    resumed = load_checkpoint(killed / "last.pt", "adding")["model"]
    assert all(torch.equal(straight[name], resumed[name]) for name in straight)
