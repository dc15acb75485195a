"""The browser client (plain HTML/JS/CSS), shipped inside the package as ``sketchrnn.client``."""
