"""A sketch recognizer: which served Sketch-RNN model a person's (possibly half-finished) drawing
belongs to, as a bidirectional GRU from ``sketchrnn.core`` over Google-simplified strokes."""

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from sketchrnn.catalog import RECOGNIZER_FILE, file_sha256
from sketchrnn.checkpoints import load_model
from sketchrnn.core.checkpoint import read_checkpoint, save_atomic
from sketchrnn.core.engine import option
from sketchrnn.core.layers import RecurrentStack, reverse_padded
from sketchrnn.data import drop_points
from sketchrnn.drawing_input import FRAME
from sketchrnn.sampler import Batch, Request, Settings
from sketchrnn.strokes import polylines_to_stroke3, simplify_raw, stroke3_to_polylines

FORMAT = "sketchrnn-recognizer/2"  # /2: "states", one state dict per net of the ensemble
FORMATS_READ = ("sketchrnn-recognizer/1", FORMAT)  # /1: one net, its "state"
FEATURES = 5  # per point: dx, dy (offset), x, y (position in the frame), pen lifts after it
OFFSET_UNIT = 32.0  # frame units per feature unit: offsets of simplified drawings have a std of ~25-35


@dataclass
class RecognizerConfig:
    """How ``sketchrnn recognizer build`` trains (a field with a help is also a flag)."""

    # data
    samples_per_model: int = option(1000, "drawings sampled from each model (3.5-7 ms each to sample and "
                                          "simplify)", minimum=1)
    # Sampling may take this share of --minutes at most: past ~100 models (Google host more) each
    # model then draws fewer, never under min_samples, and the nets keep their training time.
    sampling_share: float = 0.35
    min_samples: int = 200
    # Sampling temperatures are drawn uniformly in [low, high]: people's drawings vary more than
    # low-temperature samples (0.3-0.9 recognised fewer half-drawings than 0.5-1.0).
    temperature_low: float = 0.5
    temperature_high: float = 1.0
    sample_rows: int = 192  # decoder rows stepped together; a finished row is refilled at once
    max_points: int = 200  # longer drawings keep their first 200 simplified points (the classes show by then)
    real_fraction: float = option(0.3, "share of people's drawings (--drawings) in a batch: few, but the "
                                       "drawings guesses are about", minimum=0, maximum=1)
    # augmentation, redrawn every batch
    prefix_prob: float = 0.5  # a drawing is cut to a random prefix this often: guesses come mid-drawing
    prefix_min: float = 0.3  # shortest prefix, as a fraction of the drawing's points
    drop_prob: float = 0.1  # point dropping (data.drop_points), Magenta's augment_stroke_prob
    stretch: float = 0.2  # x and y scaled independently by up to +-20%
    rotate: float = 12.0  # degrees, either way: people draw a little tilted
    shear: float = 0.15  # x += shear * y and the like, either way
    mirror: float = 0.5  # a drawing is mirrored left-right this often: people draw a pig facing either way
    # model
    cell: str = "gru"  # a core cell; GRU has torch's fused kernel on the CPU and no forget-bias tuning
    conv_channels: int = 64  # 1-D convolutions before the RNN see local shape (corners, curls); 0: none
    conv_kernel: int = 5
    conv_stride: int = 2  # the second convolution halves the sequence: the RNN's steps are its cost
    hidden: int = option(128, "GRU units per direction", minimum=1, maximum=8192)
    layers: int = 2
    dropout: float = 0.2  # between layers and before the head
    # optimisation
    batch_size: int = 128
    # More steps name people's drawings right more often but rank the true class lower when wrong:
    # 2,500 gave whole top-1 +4 points and top-3 -0.4 to -2.7 against 1,500 (BENCHMARKS.md).
    steps: int = option(1500, "training steps per net at most (--minutes may end training first); ~3.5 min "
                              "on 2 idle cores", minimum=1)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1  # decoder drawings are noisy labels of people's drawings
    minutes: float = option(18.0, "the whole build, sampling included: training is cut to fit", above=0)
    threads: int = option(1, "torch and BLAS threads for the build", minimum=1, maximum=1024)
    seed: int = option(0, "seeds sampling, augmentation and initialisation", minimum=0)
    # A guess averages a drawing's probabilities with its mirror image's: one batch of two, no more
    # steps, and the nets' leanings to one side cancel out (BENCHMARKS.md, Draw anything).
    guess_mirrored: bool = True
    # Two nets averaged recognise people's drawings better than either alone (+1.6 to +2.4 top-1,
    # +0.4 to +1.9 top-3 over two seeds, BENCHMARKS.md) for twice the build and the guess time.
    nets: int = option(2, "nets trained on the same samples, each with its own seed and share of the "
                          "training time; a guess averages their probabilities", minimum=1, maximum=16)


# --- Input pipeline: the same for training and for a guess ---------------------------------------


def simplify(drawing) -> np.ndarray:
    """A drawing (absolute polylines in any units, or stroke-3) -> stroke-3 as Google simplified
    Quick, Draw! (top-left at 0, longer side 255, resampled at 1 unit, RDP 2.0, rounded)."""
    if isinstance(drawing, np.ndarray) and drawing.ndim == 2 and drawing.shape[1] == 3:
        drawing = stroke3_to_polylines(drawing)
    return polylines_to_stroke3(simplify_raw([np.asarray(p, dtype=np.float64) for p in drawing]))


def features(s3: np.ndarray, max_points: int) -> np.ndarray:
    """Stroke-3 -> (N, FEATURES) float32. The frame is taken again here (min 0, longer side 255),
    so an augmented or cut drawing reads as a person's drawing of that shape would."""
    s3 = s3[:max_points]
    xy = np.cumsum(s3[:, :2], 0, dtype=np.float64)
    low = xy.min(0)
    extent = float((xy - low).max())
    xy = (xy - low) * (FRAME / extent if extent > 0 else 1.0)
    offsets = np.diff(xy, axis=0, prepend=xy[:1])
    pen = s3[:, 2:3].astype(np.float64)
    pen[-1] = 1.0  # a cut drawing's last stroke ends where it was cut
    return np.concatenate([offsets / OFFSET_UNIT, xy / (FRAME / 2) - 1.0, pen], 1).astype(np.float32)


def mirrored(s3: np.ndarray) -> np.ndarray:
    """Stroke-3 flipped left-right."""
    out = s3.copy()
    out[:, 0] = -out[:, 0]
    return out


def pad(sequences: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """(T, B, FEATURES) zero-padded, time-major, and the lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sequences])
    x = torch.zeros(int(lengths.max()), len(sequences), FEATURES)
    for b, s in enumerate(sequences):
        x[: len(s), b] = torch.as_tensor(s)
    return x, lengths


def augment(s3: np.ndarray, cfg: RecognizerConfig, rng: np.random.Generator) -> np.ndarray:
    """A random prefix, dropped points and a random affine map of one simplified drawing."""
    if rng.random() < cfg.prefix_prob and len(s3) > 2:
        s3 = s3[: max(2, math.ceil(len(s3) * rng.uniform(cfg.prefix_min, 1.0)))]
    s3 = drop_points(s3, cfg.drop_prob, rng)
    angle = math.radians(rng.uniform(-cfg.rotate, cfg.rotate))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shear = np.eye(2) + np.diag(rng.uniform(-cfg.shear, cfg.shear, 1), 1 if rng.random() < 0.5 else -1)
    stretch = np.diag(rng.uniform(1 - cfg.stretch, 1 + cfg.stretch, 2))
    out = mirrored(s3) if rng.random() < cfg.mirror else s3.copy()
    out[:, :2] = out[:, :2] @ (stretch @ shear @ rotation).T.astype(np.float32)  # offsets map as positions do
    return out


# --- The classifier -------------------------------------------------------------------------------


class StrokeClassifier(nn.Module):
    """Convolutions over the point sequence, a bidirectional recurrent stack, and a linear head on
    the mean and the max of its outputs over each drawing's own points."""

    def __init__(self, cfg: RecognizerConfig, classes: int):
        super().__init__()
        self.dropout = cfg.dropout
        size, k = FEATURES, cfg.conv_kernel
        convs = []
        for stride in ((1, cfg.conv_stride) if cfg.conv_channels else ()):
            convs += [nn.Conv1d(size, cfg.conv_channels, k, stride, padding=k // 2), nn.ReLU()]
            size = cfg.conv_channels
        self.conv = nn.Sequential(*convs)
        self.rnn = RecurrentStack(cfg.cell, size, cfg.hidden, cfg.layers, bidirectional=True)
        self.head = nn.Linear(4 * cfg.hidden, classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """(T, B, FEATURES) padded drawings and their lengths -> logits (B, classes)."""
        if len(self.conv):
            x = x.permute(1, 2, 0)  # (B, FEATURES, T)
            for conv, activation in zip(self.conv[::2], self.conv[1::2]):
                x = activation(conv(x))
                stride = conv.stride[0]
                lengths = (lengths + stride - 1) // stride  # steps that read a real point
                # Zero what lies past each drawing's end (the bias made it non-zero): the next
                # convolution would read it, and a drawing guessed alone has no padding at all.
                x = x * (torch.arange(x.shape[-1])[None, :] < lengths[:, None])[:, None, :]
            x = x.permute(2, 0, 1)
        alive = (torch.arange(x.shape[0])[:, None] < lengths[None, :])[..., None]  # (T, B, 1)
        x = x * alive  # padding stays zero
        for i, layer in enumerate(self.rnn.layers):
            if i:
                x = F.dropout(x, self.dropout, self.training)
            # Each direction over the whole padded batch, the backward one over each drawing reversed
            # within its own length: both read real points before padding, and padded outputs are
            # masked below. (A packed sequence's backward pass on the CPU is quadratic in length;
            # see BidirectionalLayer.last_outputs.)
            forward, _ = layer.forward_layer(x)
            backward, _ = layer.backward_layer(reverse_padded(x, lengths))
            x = torch.cat([forward, reverse_padded(backward, lengths)], -1)
        mean = (x * alive).sum(0) / lengths[:, None]
        peak = x.masked_fill(~alive, -torch.inf).amax(0)
        return self.head(F.dropout(torch.cat([mean, peak], -1), self.dropout, self.training))


# --- Training data from the decoders ---------------------------------------------------------------


@torch.no_grad()
def sample_model(loaded, n: int, cfg: RecognizerConfig, rng: np.random.Generator,
                 seconds: float = math.inf) -> list[np.ndarray]:
    """n drawings of one decoder, each at its own temperature, simplified; fewer (but at least
    min(n, cfg.min_samples)) if that takes over ``seconds``. Rows of one sampler Batch, a
    finished one replaced at once: ``sampler.sample`` steps all n until the longest ends (2.5x the
    points a drawing needs on average)."""
    deadline = time.monotonic() + seconds
    batch = Batch(loaded.model)
    batch.unseeded_rng = rng  # every row draws from this stream: the build repeats with its seed
    temperatures = list(rng.uniform(cfg.temperature_low, cfg.temperature_high, n))
    points, done = {}, []
    while len(done) < n and (len(done) < min(n, cfg.min_samples) or time.monotonic() < deadline):
        room = min(cfg.sample_rows - len(batch), len(temperatures))
        if room > 0:
            batch.add([Request(np.zeros((0, 3), np.float32), loaded.scale_factor, 1,
                               Settings(temperature=float(t), max_points=loaded.max_len))
                       for t in temperatures[:room]])
            temperatures = temperatures[room:]
        step = batch.step()
        for row in np.flatnonzero(step.drawn):
            points.setdefault(step.rows[row][0], []).append([*step.offset[row], float(step.lifted[row])])
        for r in batch.drop_finished():
            drawn = points.pop(r, [])
            if len(drawn) >= 2:  # a drawing needs a stroke
                done.append(np.array(drawn, np.float32))
        if not len(batch) and not temperatures:  # drawings of under 2 points were not kept: draw more
            temperatures = list(rng.uniform(cfg.temperature_low, cfg.temperature_high, n - len(done)))
    return [simplify(d) for d in done]


def sample_models(model_paths: dict[str, str | Path], cfg: RecognizerConfig, progress: bool = True):
    """{name: simplified decoder drawings} for every model, within cfg.sampling_share of the
    build's minutes: each model gets an even share of what the ones before it left."""
    rng = np.random.default_rng(cfg.seed)
    samples, start = {}, time.monotonic()
    for k, (name, path) in enumerate(tqdm(model_paths.items(), desc="sampling", unit="model", disable=not progress)):
        left = cfg.minutes * 60 * cfg.sampling_share - (time.monotonic() - start)
        samples[name] = sample_model(load_model(path), cfg.samples_per_model, cfg, rng, left / (len(model_paths) - k))
    return samples


# --- Build, guess, save, load ----------------------------------------------------------------------


class Recognizer:
    """A trained classifier and the models it names: ``guess`` a drawing, ``save`` / ``load``."""

    def __init__(self, names: list[str], hashes: dict[str, str], cfg: RecognizerConfig,
                 nets: list[StrokeClassifier] | None = None):
        self.names, self.hashes, self.cfg = list(names), dict(hashes), cfg
        nets = nets or [StrokeClassifier(cfg, len(names)) for _ in range(cfg.nets)]
        self.nets = [net.eval() for net in nets]

    @torch.no_grad()
    def probabilities(self, drawings: list) -> Tensor:
        """(len(drawings), models) class probabilities, the drawings (and their mirror images, if
        cfg.guess_mirrored) read as one padded batch; the mean over nets and images."""
        drawings = [simplify(d) for d in drawings]
        images = drawings + [mirrored(s3) for s3 in drawings] if self.cfg.guess_mirrored else drawings
        x, lengths = pad([features(s3, self.cfg.max_points) for s3 in images])
        total = 0
        for net in self.nets:
            net.eval()
            total = total + net(x, lengths).softmax(-1)
        return (total / len(self.nets)).view(-1, len(drawings), len(self.names)).mean(0)

    def guess(self, drawing) -> list[tuple[str, float]]:
        """[(model name, probability)], likeliest first, for one drawing (polylines or stroke-3)."""
        p = self.probabilities([drawing])[0].tolist()
        return sorted(zip(self.names, p), key=lambda pair: -pair[1])

    def save(self, path: str | Path) -> None:
        save_atomic({"format": FORMAT, "names": self.names, "sha256": self.hashes, "config": asdict(self.cfg),
                    "states": [net.state_dict() for net in self.nets]}, Path(path))

    @classmethod
    def load(cls, path: str | Path, model_paths: dict[str, str | Path] | None = None) -> "Recognizer":
        """A saved recognizer; with ``model_paths``, refused unless it was built for exactly these
        model files (names and contents), since its classes are their names."""
        saved = read_checkpoint(path)
        if not isinstance(saved, dict) or saved.get("format") not in FORMATS_READ:
            raise ValueError(f"{path}: not a recognizer file ({FORMAT})")
        if model_paths is not None:
            hashes = {name: file_sha256(p) for name, p in model_paths.items()}
            if hashes != saved["sha256"]:
                names = set(hashes) | set(saved["sha256"])
                changed = sorted(n for n in names if hashes.get(n) != saved["sha256"].get(n))
                raise ValueError(f"{path}: built for other models; these differ (missing, added or changed): "
                                 f"{', '.join(changed)}. Rebuild it for the models served.")
        known = {f.name for f in fields(RecognizerConfig)}  # a field since dropped only shaped training
        cfg = RecognizerConfig(**{k: v for k, v in saved["config"].items() if k in known})
        states = saved["states"] if "states" in saved else [saved["state"]]
        cfg.nets = len(states)  # a /1 file's config predates the field
        recognizer = cls(saved["names"], saved["sha256"], cfg)
        for net, state in zip(recognizer.nets, states):
            net.load_state_dict(state)
        return recognizer


def build(model_paths: dict[str, str | Path], drawings: dict[str, list] | None = None,
          cfg: RecognizerConfig | None = None, progress: bool = True,
          samples: dict[str, list[np.ndarray]] | None = None) -> Recognizer:
    """Train a recognizer for these models on their own drawings and, if given, people's drawings
    by model name (polylines or stroke-3). ``samples``: sample_models' output, to skip sampling."""
    start, cfg = time.monotonic(), cfg or RecognizerConfig()
    names = list(model_paths)
    unknown = set(drawings or {}) - set(names)
    if unknown:
        raise ValueError(f"drawings for classes no model serves: {', '.join(sorted(unknown))}")
    with threadpool_limits(cfg.threads), _torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        samples = samples if samples is not None else sample_models(model_paths, cfg, progress)
        pools = [[(s, names.index(n)) for n in names for s in samples[n]],
                 [(simplify(d), names.index(n)) for n, ds in (drawings or {}).items() for d in ds]]
        share = cfg.real_fraction if pools[1] else 0.0
        nets, steps = [], []
        for k in range(cfg.nets):
            # The first net is seeded as a one-net build is; each further one has a seed of its own.
            if k:
                torch.manual_seed(cfg.seed + 7919 * k)
            rng = np.random.default_rng(cfg.seed + 1 if k == 0 else [cfg.seed + 1, k])
            # Each net gets an even share of what sampling and the nets before it left; at least a
            # minute, so an overrun still yields a classifier.
            budget = max(60.0, (cfg.minutes * 60 - (time.monotonic() - start)) / (cfg.nets - k))
            desc = f"training {k + 1}/{cfg.nets}" if cfg.nets > 1 else "training"
            net, done = _train(pools, share, cfg, len(names), rng, budget, desc, progress)
            nets.append(net)
            steps.append(done)
            if done < cfg.steps and progress:  # a recognizer cut short guesses worse: say so
                tqdm.write(f"net {k + 1}: training stopped by --minutes after {done} of {cfg.steps} steps")
    recognizer = Recognizer(names, {n: file_sha256(p) for n, p in model_paths.items()}, cfg, nets)
    recognizer.steps = steps  # how far each net's training got (the budget may end it first)
    return recognizer


def _train(pools, share: float, cfg: RecognizerConfig, classes: int, rng: np.random.Generator,
           budget: float, desc: str, progress: bool) -> tuple[StrokeClassifier, int]:
    """One classifier trained for cfg.steps or ``budget`` seconds, whichever ends first; the steps run."""
    net = StrokeClassifier(cfg, classes)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # The net kept is an average of the weights over roughly the last tenth of training (at update n
    # the average keeps n / (n + 9) of itself): top-3 as good or better in 7 of 7 paired builds.
    averaged = AveragedModel(net, avg_fn=lambda mean, now, n: mean + (now - mean) * (9 / (n + 9)))
    train_start, queue = time.monotonic(), []
    bar = tqdm(total=cfg.steps, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
    for step in range(cfg.steps + 1):
        done = max(step / cfg.steps, (time.monotonic() - train_start) / budget)  # whichever ends first
        if done >= 1:
            break
        # Linear warmup over 3%, then cosine to zero at the end of the steps or the budget.
        lr = cfg.lr * min(1.0, done / 0.03) * 0.5 * (1 + math.cos(math.pi * done))
        for group in optimizer.param_groups:
            group["lr"] = lr
        if not queue:  # 8 batches at a time, sorted by length: little padding in each
            queue = _batches(pools, share, cfg, rng, 8)
        x, lengths, labels = queue.pop()
        net.train()
        loss = F.cross_entropy(net(x, lengths), labels, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # a rare long scribble spikes the gradient
        optimizer.step()
        averaged.update_parameters(net)
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", refresh=False)
        bar.update()
    bar.close()
    return averaged.module.eval(), step


def _batches(pools, share: float, cfg: RecognizerConfig, rng: np.random.Generator, count: int):
    """``count`` batches of augmented drawings, ``share`` of them people's, grouped by length."""
    n = count * cfg.batch_size
    real = rng.binomial(n, share)
    chosen = [pools[1][i] for i in rng.integers(len(pools[1]), size=real)] if real else []
    chosen += [pools[0][i] for i in rng.integers(len(pools[0]), size=n - real)]
    items = sorted(((features(augment(s, cfg, rng), cfg.max_points), label) for s, label in chosen),
                   key=lambda item: len(item[0]))
    batches = []
    for i in range(0, n, cfg.batch_size):
        part = items[i : i + cfg.batch_size]
        x, lengths = pad([f for f, _ in part])
        batches.append((x, lengths, torch.tensor([label for _, label in part])))
    return [batches[i] for i in rng.permutation(len(batches))]


class _torch_threads:
    """torch's intra-op thread count set for a block, restored after it."""

    def __init__(self, count: int):
        self.count = count

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.count)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def load_for(model_files: dict[str, Path], path: str | Path | None = None) -> Recognizer | None:
    """The recognizer for exactly these models: ``path``, else ``recognizer.pt`` in the folder of
    the model files, else None (the models' likelihoods guess). One built for other models is
    refused, naming the difference."""
    if path is None:
        found = {Path(p).parent / RECOGNIZER_FILE for p in model_files.values()}
        found = sorted(f for f in found if f.is_file())
        if not found:
            return None
        path = found[0]
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such recognizer file")
    recognizer = Recognizer.load(path, model_files)
    recognizer.path = Path(path)
    return recognizer
