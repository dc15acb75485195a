"""Character- and word-level language models on the shared recurrent core: the model, its
evaluation with state carried through a file, and streaming samples."""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sketchrnn.core import CELLS, RecurrentStack, fast_dropout
from sketchrnn.core.checkpoint import CheckpointError, load_checkpoint
from sketchrnn.core.engine import option
from sketchrnn.text.corpus import EOS, TextError, Vocabulary, batchify, tokenize


@dataclass
class TextConfig:
    level: str = option("char", "symbols: characters, or whitespace-separated words", choices=("char", "word"))
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden: int = option(256, "units per layer", minimum=1, maximum=8192)
    layers: int = option(2, "stacked recurrent layers", minimum=1, maximum=64)
    embedding: int = option(0, "input embedding size; 0: the same as --hidden, which allows tying",
                            minimum=0, maximum=8192)
    dropout: float = option(0.2, "dropout on embeddings, between layers and before the output (Zaremba et al.)",
                            minimum=0, below=1)
    tied: bool = option(False, "share input and output embeddings (word level; needs embedding == hidden)")
    vocab: list[str] = field(default_factory=list)  # filled from the training text



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
