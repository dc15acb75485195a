"""The recurrent core: cells behind one interface, layers that unroll them, and the BPTT engine."""

from sketchrnn.core.cells import CELLS, RecurrentCell, State, fast_dropout, make_cell
from sketchrnn.core.layers import BidirectionalLayer, RecurrentLayer, RecurrentStack, compile_steps

__all__ = [
    "CELLS",
    "BidirectionalLayer",
    "RecurrentCell",
    "RecurrentLayer",
    "RecurrentStack",
    "State",
    "compile_steps",
    "fast_dropout",
    "make_cell",
]
