"""The text models' training recipe: truncated BPTT through the engine over contiguous streams
of a file, validation on its last tenth."""

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from sketchrnn.core import distributed
from sketchrnn.core.engine import TrainConfig, option, train
from sketchrnn.core.run import check_run_folder
from sketchrnn.text.corpus import UNK, TextError, Vocabulary, batchify, read_text, tokenize
from sketchrnn.text.model import TextConfig, TextModel, nats_per_symbol


def text_recipe() -> TrainConfig:
    """The 5-minute recipe on 2 CPU cores (BENCHMARKS.md: 1.506 nats/char on tiny-shakespeare):
    Adam 3e-3, annealed to zero over the last 30% of the budget, bf16 where that is fast."""
    return TrainConfig(steps=0, minutes=5.0, lr=3e-3, warmdown=0.3, precision="auto", clip=1.0, eval_every=500)


@dataclass
class TextTrainConfig:
    """Everything ``sketchrnn text train`` sets; its defaults are the 5-minute recipe."""

    model: TextConfig = field(default_factory=TextConfig)
    engine: TrainConfig = field(default_factory=text_recipe)
    bptt: int = option(100, "truncated BPTT length in symbols", minimum=1)
    batch_size: int = option(64, "parallel streams; 64 fills 2 CPU cores better than 32", minimum=1, maximum=100_000)
    max_vocab: int | None = option(None, "word level: keep this many words, the rest <unk>", minimum=1)
    # Sampling starts from zero state, which carried-state training otherwise shows a model once
    # per pass per stream: a 2x512 LSTM trained 30 minutes without resets answered the prime
    # "ROMEO:" with "jjXQ;jjqWx..." yet continued "First Citizen:" well.
    state_reset: float = option(0.02, "chance a stream starts a chunk from zero state, as sampling does",
                               minimum=0, maximum=1)



def train_text_model(path: str, out_dir: str | Path, run: TextTrainConfig, resume: bool = False,
                     progress: bool = True, overwrite: bool = False) -> dict:
    """Truncated BPTT over ``batch_size`` contiguous streams of the first 90% of the file;
    validation on the last 10% (nanoGPT's split of tiny-shakespeare). A run folder that holds a
    run is continued (``resume``: the same file and model, or a refusal) or started over (``overwrite``)."""
    check_run_folder(out_dir, resume, overwrite)
    cfg, bptt, batch_size, state_reset = run.model, run.bptt, run.batch_size, run.state_reset
    if not 0 <= state_reset <= 1:
        raise ValueError(f"state_reset is a probability in [0, 1], got {state_reset}")
    text = read_text(path)
    cut = int(len(text) * 0.9)
    if cfg.level == "word":
        cut = text.rfind("\n", 0, cut) + 1 or cut  # split between lines
    train_tokens, valid_tokens = tokenize(text[:cut], cfg.level), tokenize(text[cut:], cfg.level)
    # Characters: the whole file's alphabet (a held-out tail may use a rare one). Words: the
    # training part's, capped, with <unk>.
    vocab = Vocabulary.build(tokenize(text, "char") if cfg.level == "char" else train_tokens + [UNK],
                             cfg.level, run.max_vocab)
    cfg.vocab = vocab.symbols
    data = batchify(vocab.encode(train_tokens, path), batch_size)
    valid = vocab.encode(valid_tokens, path)
    chunks = (data.shape[0] - 1) // bptt
    if chunks < 1 or valid.numel() < 2:
        raise TextError(f"{path}: too short for --bptt {bptt} and --batch-size {batch_size}")
    torch.manual_seed(run.engine.seed)
    model = TextModel(cfg)

    def batch_fn(step):
        i = step % chunks
        return i, data[i * bptt : (i + 1) * bptt], data[i * bptt + 1 : (i + 1) * bptt + 1]

    def shard_batch(batch, group):  # one torchrun rank's streams (columns)
        i, x, y = batch
        part = distributed.shard(x.shape[1], group)
        return i, x[:, part], y[:, part]

    def loss_fn(model, batch, carry, step):
        i, x, y = batch
        if i == 0:
            carry = None  # a new pass starts from zero state
        elif state_reset > 0:
            keep = (torch.rand(x.shape[1], device=x.device) >= state_reset)[:, None]
            carry = [tuple(s * keep.to(s.dtype) for s in layer) for layer in carry]
        logits, state = model(x, carry)
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten()), state, {}

    def evaluate(model):
        nats = nats_per_symbol(model, valid, streams=min(10, valid.numel() // 2))
        return {"loss": nats, "nats": nats, "bits": nats / math.log(2), "perplexity": math.exp(min(nats, 50))}

    return train(model, run.engine, out_dir, kind="text", config=asdict(cfg), batch_fn=batch_fn, loss_fn=loss_fn,
                 evaluate=evaluate, extras={"train_config": asdict(run), "data": Path(path).name}, resume=resume,
                 progress=progress, shard_batch=shard_batch)
