"""Our sampler against Magenta's own sketch-rnn-js (@magenta/sketch 0.2.0 in Node.js, installed
into tests/js by .ci/run): for the same .gen.json and temperature, the drawings it samples must
have the same statistics as ours, within sampling error."""

import numpy as np

from sketchrnn.checkpoints import load_model
from sketchrnn.sampler import Settings, sample

COUNT = 200  # drawings on each side of a sampling comparison


def agree(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Means within 3.5 standard errors of their difference."""
    error = np.sqrt(ours.var(ddof=1) / len(ours) + theirs.var(ddof=1) / len(theirs))
    return abs(ours.mean() - theirs.mean()) <= 3.5 * error


def test_sampled_statistics_match_sketch_rnn_js(reference, shared_data):
    path = shared_data / "models" / "bird.gen.json"
    theirs = reference(path, 0.25, 250)
    loaded = load_model(path)
    drawings = sample(loaded.model, loaded.scale_factor, COUNT, Settings(temperature=0.25, seed=0))
    ours_points = np.array([len(d) for d in drawings], dtype=float)
    ours_rate = np.array([d[:, 2].mean() for d in drawings if len(d)])
    their_points = np.array(theirs["points"], dtype=float)
    their_rate = np.array([u / n for u, n in zip(theirs["lifts"], theirs["points"]) if n])
    summary = (f"points per drawing: ours {ours_points.mean():.1f}, sketch-rnn-js {their_points.mean():.1f}; "
               f"lifts per point: ours {ours_rate.mean():.4f}, sketch-rnn-js {their_rate.mean():.4f}")
    assert agree(ours_points, their_points), summary
    assert agree(ours_rate, their_rate), summary
