"""Text as the language models read it: a UTF-8 file, its tokens (characters or words), the
vocabulary that numbers them, and the parallel streams truncated BPTT walks through."""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

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
