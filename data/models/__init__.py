"""The default model the project ships, inside the package as ``sketchrnn.models``."""
