"""Text models on the shared core: tiny real runs on names.txt and a slice of tiny-shakespeare."""

import io
import json

import pytest
import torch

from sketchrnn.checkpoints import DEFAULT_MODEL
from sketchrnn.cli import main
from sketchrnn.core.engine import TrainConfig
from sketchrnn.text import (
    TextConfig,
    TextError,
    TextModel,
    TextTrainConfig,
    Vocabulary,
    batchify,
    generate,
    load_text_model,
    nats_per_symbol,
    read_text,
    tokenize,
    train_text_model,
)


@pytest.fixture
def shakespeare_slice(shared_data, tmp_path):
    path = tmp_path / "shakespeare.txt"
    path.write_text((shared_data / "text" / "tinyshakespeare.txt").read_text()[:60_000])
    return path


def small(level="char", **kw):
    return TextConfig(level=level, hidden=48, layers=1, dropout=0.0, **kw)


def test_batchify_columns_are_contiguous_streams():
    data = batchify(torch.arange(14), 3)
    assert data.shape == (4, 3) and data[:, 1].tolist() == [4, 5, 6, 7]


def test_training_lowers_the_loss_and_checkpoints_round_trip(shakespeare_slice, tmp_path):
    run = TextTrainConfig(small(), TrainConfig(steps=120, eval_every=60, lr=3e-3), bptt=50, batch_size=16)
    summary = train_text_model(str(shakespeare_slice), tmp_path, run, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    valid = [r["nats"] for r in rows if r["split"] == "valid"]
    assert valid[-1] < valid[0] < 4.2, valid  # uniform over ~60 symbols would be ~4.1
    model = load_text_model(tmp_path / "best.pt")
    assert model.cfg.vocab and summary["best_valid_loss"] == pytest.approx(min(valid))


def test_sampling_with_a_seed_repeats_and_priming_equals_stepping(shared_data, tmp_path):
    run = TextTrainConfig(small(), TrainConfig(steps=30, eval_every=30), bptt=30, batch_size=16)
    train_text_model(str(shared_data / "text" / "names.txt"), tmp_path, run, progress=False)
    model = load_text_model(tmp_path / "best.pt")
    a, b = (generate(model, "ann", 60, seed=3, out=None) for _ in range(2))
    assert a == b and len(a) == 60
    shown = io.StringIO()
    assert generate(model, "ann", 20, seed=4, out=shown) == shown.getvalue()
    vocab = Vocabulary("char", model.cfg.vocab)
    ids = vocab.encode(list("annabel\n"), "test")
    whole, _ = model(ids[:, None])
    state, stepped = None, []
    for i in ids:
        logits, state = model(i.view(1, 1), state)
        stepped.append(logits)
    torch.testing.assert_close(torch.cat(stepped), whole, atol=1e-5, rtol=1e-5)


def test_eval_on_a_file_equals_eval_on_its_chunks_with_carried_state(shared_data):
    torch.manual_seed(0)
    vocab = Vocabulary.build(tokenize(read_text(shared_data / "text" / "names.txt"), "char"), "char")
    model = TextModel(TextConfig(hidden=32, layers=2, vocab=vocab.symbols)).eval()
    ids = vocab.encode(list(read_text(shared_data / "text" / "names.txt")[:3000]), "names")
    assert nats_per_symbol(model, ids, chunk=3000) == pytest.approx(nats_per_symbol(model, ids, chunk=77), rel=1e-5)


def test_word_level_with_unk_and_tied_embeddings(shared_data, tmp_path):
    text = (shared_data / "text" / "wikitext-2" / "valid.txt").read_text()[:40_000]
    path = tmp_path / "wiki.txt"
    path.write_text(text)
    cfg = TextConfig(level="word", hidden=32, layers=1, dropout=0.0, tied=True)
    run = TextTrainConfig(cfg, TrainConfig(steps=10, eval_every=10), bptt=20, batch_size=8, max_vocab=500)
    train_text_model(str(path), tmp_path / "run", run, progress=False)
    model = load_text_model(tmp_path / "run" / "best.pt")
    assert len(model.cfg.vocab) == 500 and "<unk>" in model.cfg.vocab and "<eos>" in model.cfg.vocab
    assert model.out.weight is model.embed.weight
    vocab = Vocabulary("word", model.cfg.vocab)
    assert vocab.encode(["zyzzyva-never-seen"], "x").item() == vocab.index["<unk>"]


def test_bad_text_gives_clear_errors(tmp_path, shared_data):
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(TextError, match="empty.txt: empty"):
        read_text(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(TextError, match="bin.txt: not UTF-8"):
        read_text(tmp_path / "bin.txt")
    (tmp_path / "crlf.txt").write_bytes(b"ab\r\ncd\r\n")
    assert read_text(tmp_path / "crlf.txt") == "ab\ncd\n"
    with pytest.raises(ValueError, match="state_reset is a probability"):
        train_text_model(str(shared_data / "text" / "names.txt"), tmp_path,
                         TextTrainConfig(engine=TrainConfig(steps=1), state_reset=1.5))
    vocab = Vocabulary.build(list("abc\n"), "char")
    with pytest.raises(TextError, match="'é' \\(U\\+00E9\\) is not in the model's vocabulary"):
        vocab.encode(list("abé"), "prime")


def test_text_commands(shared_data, tmp_path, capsys):
    names = str(shared_data / "text" / "names.txt")
    assert main(["text", "train", "--data", names, "--out", str(tmp_path), "--hidden", "32", "--layers", "1",
                 "--steps", "20", "--minutes", "0", "--eval-every", "20", "--bptt", "30", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 20
    assert main(["text", "sample", "--model", str(tmp_path / "best.pt"), "--prime", "em", "--length", "30",
                 "--seed", "1"]) == 0
    assert len(capsys.readouterr().out) == 31
    assert main(["text", "eval", "--model", str(tmp_path / "best.pt"), "--data", names]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"{tmp_path / 'best.pt'} on {names}: ") and "nats per character" in line, line
    assert main(["text", "eval", "--model", str(tmp_path / "best.pt"), "--data", names, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["level"] == "char" and result["bits_per_char"] == pytest.approx(result["nats"] / 0.6931, rel=1e-3)
    assert main(["text", "sample", "--model", str(tmp_path / "best.pt"), "--prime", "ž"]) == 2
    assert "is not in the model's vocabulary" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert main(["text", "eval", "--model", str(tmp_path / "junk.pt"), "--data", names]) == 2
    assert "junk.pt: not a checkpoint" in capsys.readouterr().err
    assert main(["text", "eval", "--model", str(DEFAULT_MODEL), "--data", names]) == 2
    assert "sheep.pt: a sketch checkpoint, not a text one" in capsys.readouterr().err
