"""Character- and word-level language models on the shared recurrent core, trained with
truncated BPTT through the engine; evaluation with state carried through a file; streaming samples.
"""

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sketchrnn.core import CELLS, RecurrentStack, distributed, fast_dropout
from sketchrnn.core.engine import CheckpointError, TrainConfig, load_checkpoint, option, train

EOS, UNK = "<eos>", "<unk>"


class TextError(ValueError):
    """Text that cannot be used: names the file and the problem."""


def read_text(path: str | Path) -> str:
    """A UTF-8 text file with line endings normalised to \\n (CRLF files work)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")  # universal newlines: \r\n -> \n
    except FileNotFoundError:
        raise TextError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TextError(f"{path}: a folder, not a text file") from None
    except UnicodeDecodeError as e:
        raise TextError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    if "\x00" in text:
        raise TextError(f"{path}: holds NUL characters; a binary file, not text")
    if not text.strip():
        raise TextError(f"{path}: empty")
    return text


def tokenize(text: str, level: str) -> list[str]:
    if level == "char":
        return list(text)
    return [w for line in text.split("\n") for w in (*line.split(), EOS)]


@dataclass
class Vocabulary:
    level: str  # "char" or "word"
    symbols: list[str]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, tokens: list[str], level: str, max_size: int | None = None) -> "Vocabulary":
        counts: dict[str, int] = {}
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
        symbols = sorted(counts) if level == "char" else sorted(counts, key=lambda s: (-counts[s], s))
        if level == "word" and (max_size is not None and len(symbols) > max_size - 1 or UNK in counts):
            symbols = [s for s in symbols if s != UNK][: (max_size or len(symbols) + 1) - 1] + [UNK]
        return cls(level, symbols)

    def encode(self, tokens: list[str], where: str) -> Tensor:
        unk = self.index.get(UNK)
        ids = []
        for t in tokens:
            i = self.index.get(t, unk)
            if i is None:
                raise TextError(f"{where}: {t!r} (U+{ord(t[0]):04X}) is not in the model's vocabulary"
                                if len(t) == 1 else f"{where}: {t!r} is not in the model's vocabulary")
            ids.append(i)
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids) -> str:
        sep = "" if self.level == "char" else " "
        return sep.join("\n" if self.symbols[i] == EOS else self.symbols[i] for i in ids)


def batchify(ids: Tensor, streams: int) -> Tensor:
    """Cut one long sequence into ``streams`` contiguous columns, dropping the remainder:

        a b c d e f g h i j k l  (streams = 3)  ->   a e i
                                                     b f j    (T, B): column b holds the b-th
                                                     c g k    third of the text, top to bottom
                                                     d h l
    Training reads the rows chunk by chunk, each column's state carried from chunk to chunk.
    """
    length = ids.numel() // streams
    return ids[: length * streams].view(streams, length).t().contiguous()


@dataclass
class TextConfig:
    level: str = option("char", "symbols: characters, or whitespace-separated words", choices=("char", "word"))
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden: int = option(256, "units per layer")
    layers: int = option(2, "stacked recurrent layers")
    embedding: int = option(0, "input embedding size; 0: the same as --hidden, which allows tying")
    dropout: float = option(0.2, "dropout on embeddings, between layers and before the output (Zaremba et al.)")
    tied: bool = option(False, "share input and output embeddings (word level; needs embedding == hidden)")
    vocab: list[str] = field(default_factory=list)  # filled from the training text


def text_recipe() -> TrainConfig:
    """The 5-minute recipe on 2 CPU cores (BENCHMARKS.md: 1.506 nats/char on tiny-shakespeare):
    Adam 3e-3, annealed to zero over the last 30% of the budget, bf16 where that is fast."""
    return TrainConfig(steps=0, minutes=5.0, lr=3e-3, warmdown=0.3, precision="auto", clip=1.0, eval_every=500)


@dataclass
class TextTrainConfig:
    """Everything ``sketchrnn text train`` sets; its defaults are the 5-minute recipe."""

    model: TextConfig = field(default_factory=TextConfig)
    engine: TrainConfig = field(default_factory=text_recipe)
    bptt: int = option(100, "truncated BPTT length in symbols")
    batch_size: int = option(64, "parallel streams; 64 fills 2 CPU cores better than 32")
    max_vocab: int | None = option(None, "word level: keep this many words, the rest <unk>")
    # Sampling starts from zero state, which carried-state training otherwise shows a model once
    # per pass per stream: a 2x512 LSTM trained 30 minutes without resets answered the prime
    # "ROMEO:" with "jjXQ;jjqWx..." yet continued "First Citizen:" well.
    state_reset: float = option(0.02, "chance a stream starts a chunk from zero state, as sampling does")


class TextModel(nn.Module):
    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        size = cfg.embedding or cfg.hidden
        self.embed = nn.Embedding(len(cfg.vocab), size)
        self.rnn = RecurrentStack(cfg.cell, size, cfg.hidden, cfg.layers, layer_dropout=cfg.dropout)
        self.out = nn.Linear(cfg.hidden, len(cfg.vocab))
        if cfg.tied:
            if size != cfg.hidden:
                raise ValueError("tied embeddings need --embedding equal to --hidden")
            self.out.weight = self.embed.weight

    def forward(self, ids: Tensor, state=None) -> tuple[Tensor, list]:
        x = fast_dropout(self.embed(ids), self.cfg.dropout, self.training)
        h, state = self.rnn(x, state=state)
        return self.out(fast_dropout(h, self.cfg.dropout, self.training)), state


@torch.no_grad()
def nats_per_symbol(model: TextModel, ids: Tensor, streams: int = 1, chunk: int = 256) -> float:
    """Mean next-symbol NLL over ``ids``, read as ``streams`` columns in chunks with the state
    carried through: the same number as one pass over each column."""
    model.eval()
    data = batchify(ids, streams).to(next(model.parameters()).device)
    total, count, state = 0.0, 0, None
    for start in range(0, data.shape[0] - 1, chunk):
        x, y = data[start : start + chunk], data[start + 1 : start + chunk + 1]
        x = x[: y.shape[0]]
        logits, state = model(x, state)
        total += float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
        count += y.numel()
    return total / count


def load_text_model(path: str | Path) -> TextModel:
    try:
        ckpt = load_checkpoint(path, "text")
    except CheckpointError as e:
        raise TextError(f"{e}; expected a text model checkpoint") from None
    model = TextModel(TextConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def train_text_model(path: str, out_dir: str | Path, run: TextTrainConfig, resume: bool = False,
                     progress: bool = True) -> dict:
    """Truncated BPTT over ``batch_size`` contiguous streams of the first 90% of the file;
    validation on the last 10% (nanoGPT's split of tiny-shakespeare)."""
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
                 evaluate=evaluate, extras={"train_config": asdict(run)}, resume=resume, progress=progress,
                 shard_batch=shard_batch)


@torch.no_grad()
def generate(model: TextModel, prime: str, length: int, temperature: float = 1.0, top_k: int = 0,
             seed: int | None = None, out=None) -> str:
    """Prime the state with the whole prime in one pass, then generate one symbol per step,
    writing each to ``out`` (a text stream) as it comes."""
    vocab = Vocabulary(model.cfg.level, model.cfg.vocab)
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    model.eval()
    tokens = tokenize(prime, vocab.level) if prime else []
    if vocab.level == "word" and tokens and tokens[-1] == EOS and not prime.endswith("\n"):
        tokens = tokens[:-1]
    ids = vocab.encode(tokens, "--prime") if tokens else torch.tensor([vocab.index.get(EOS, 0)])
    logits, state = model(ids[:, None])
    logits, written = logits[-1, 0], []
    for _ in range(length):
        scaled = logits / temperature
        if top_k:
            kth = torch.topk(scaled, min(top_k, scaled.numel())).values[-1]
            scaled = scaled.masked_fill(scaled < kth, float("-inf"))
        i = int(torch.multinomial(torch.softmax(scaled, -1), 1, generator=generator))
        piece = vocab.decode([i]) + ("" if vocab.level == "char" or vocab.symbols[i] == EOS else " ")
        written.append(piece)
        if out is not None:
            out.write(piece)
            out.flush()
        logits, state = model(torch.tensor([[i]]), state)
        logits = logits[-1, 0]
    return "".join(written)
