"""The text side of the core: character- and word-level language models (corpus -> model -> train)."""

from sketchrnn.text.corpus import EOS, UNK, TextError, Vocabulary, batchify, read_text, tokenize
from sketchrnn.text.model import TextConfig, TextModel, generate, load_text_model, nats_per_symbol
from sketchrnn.text.train import TextTrainConfig, text_recipe, train_text_model

__all__ = ["EOS", "UNK", "TextError", "Vocabulary", "batchify", "read_text", "tokenize", "TextConfig", "TextModel",
           "generate", "load_text_model", "nats_per_symbol", "TextTrainConfig", "text_recipe", "train_text_model"]
