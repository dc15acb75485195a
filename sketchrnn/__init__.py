"""sketchrnn: Sketch-RNN drawing completion on a shared core of recurrent cells."""
