"""bench_train.py's configuration run beside two PyTorch ports of Sketch-RNN, interleaved, on the
same fixed batches: alexis-jacq/Pytorch-Sketch-RNN (nn.LSTM encoder and decoder) and
rfeinman/Sketch-RNN (packed nn.LSTM encoder, TorchScript decoder loop). Their code is not part
of this project: clone them anywhere and point at them.

    git clone https://github.com/alexis-jacq/Pytorch-Sketch-RNN /tmp/alexis
    git clone https://github.com/rfeinman/Sketch-RNN /tmp/rfeinman
    python bench/bench_peers.py --alexis /tmp/alexis --rfeinman /tmp/rfeinman [--rounds 3] [--threads 1]

alexis-jacq's sketch_rnn.py does not run as published (a missing parenthesis, `Variable` not
imported, `loss.data[0]`, data loaded at import); a copy with exactly those lines mended is
imported from a temporary folder, its data loading replaced by our batches (T = 250).
"""

import argparse
import importlib
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import bench_train as ours
import torch
from bench_train import BATCH, HIDDEN, SHEEP, STEPS, Z

MENDS = [  # (published line, the line that runs)
    ("import matplotlib.pyplot as plt\nimport PIL\n", ""),
    ("cell = torch.zeros(2, batch_size, hp.enc_hidden_size.cuda()",
     "cell = torch.zeros(2, batch_size, hp.enc_hidden_size).cuda()"),
    ("import torch.nn.functional as F", "import torch.nn.functional as F\nfrom torch.autograd import Variable"),
    ("dataset = np.load(hp.data_location, encoding='latin1')\ndata = dataset['train']\ndata = purify(data)\n"
     "data = normalize(data)\nNmax = max_size(data)", f"Nmax = {STEPS}"),
    ("            print('epoch',epoch,'loss',loss.data[0],'LR',LR.data[0],'LKL',LKL.data[0])\n", ""),
    ("clip_grad_norm(", "clip_grad_norm_("),
]


def alexis_step(folder: Path, batches):
    source = (folder / "sketch_rnn.py").read_text()
    for published, mended in MENDS:
        if published not in source:
            raise SystemExit(f"{folder}/sketch_rnn.py changed: {published.splitlines()[0]!r} not found")
        source = source.replace(published, mended)
    scratch = tempfile.mkdtemp()
    (Path(scratch) / "alexis_sketch_rnn.py").write_text(source)
    sys.path.insert(0, scratch)
    peer = importlib.import_module("alexis_sketch_rnn")
    torch.manual_seed(0)
    model = peer.Model()
    epochs = iter(e for e in range(1, 10**9) if e % 100)  # epoch % 100 == 0 would draw a sample

    def run():
        e = next(epochs)
        b = batches[e % len(batches)]
        peer.make_batch = lambda n: (b.targets[:STEPS].contiguous(), (b.lengths - 1).tolist())
        model.train(e)

    return run


def rfeinman_steps(folder: Path, batches):
    sys.path.insert(0, str(folder))
    from sketch_rnn.hparams import hparams
    from sketch_rnn.model import SketchRNN, model_step
    from sketch_rnn.rnn import LSTMCell, LSTMLayer

    torch.manual_seed(0)
    model = SketchRNN(hparams(dec_model="lstm", r_dropout=0.0, max_seq_len=STEPS)).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    data = [(torch.cat([b.inputs[:1], b.targets]).transpose(0, 1).contiguous(), b.lengths - 1) for b in batches]
    calls = iter(range(10**9))

    def vae():
        drawings, lengths = data[next(calls) % len(data)]
        optimizer.zero_grad()
        model_step(model, drawings, lengths).backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
        optimizer.step()

    def decoder(dropout: float):
        layer = torch.jit.script(LSTMLayer(LSTMCell(5 + Z, HIDDEN, r_dropout=dropout))).train()
        inputs = ours.decoder_inputs(batches)

        def run():
            state = (torch.zeros(BATCH, HIDDEN), torch.zeros(BATCH, HIDDEN))
            out, _ = layer(inputs[next(calls) % len(inputs)], state)
            out.sum().backward()

        return run

    return vae, decoder(0.0), decoder(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alexis", type=Path, required=True, help="a clone of alexis-jacq/Pytorch-Sketch-RNN")
    parser.add_argument("--rfeinman", type=Path, required=True, help="a clone of rfeinman/Sketch-RNN")
    parser.add_argument("--data", default=SHEEP, help=f"a stroke file to draw the batches from (default: {SHEEP})")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every side (default: 1)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the peers' deprecated calls
    torch.set_num_threads(args.threads)
    batches = ours.fixed_batches(args.data, args.rounds + 1)
    rf_vae, rf_decoder, rf_dropout = rfeinman_steps(args.rfeinman, batches)
    pairs = {  # what: (ours, {peer: theirs})
        "VAE training step": (ours.vae_step(batches), {"alexis-jacq": alexis_step(args.alexis, batches),
                                                       "rfeinman": rf_vae}),
        "decoder alone, no dropout": (ours.decoder_alone(batches, 0.0), {"rfeinman": rf_decoder}),
        "decoder alone, recurrent dropout 0.1": (ours.decoder_alone(batches, 0.1), {"rfeinman": rf_dropout}),
    }
    runs = {(what, who): fn for what, (mine, peers) in pairs.items()
            for who, fn in {"sketchrnn": mine, **peers}.items()}
    for fn in runs.values():
        fn(), fn()  # warm-up; TorchScript profiles its first two calls
    seconds = {key: [] for key in runs}
    for _ in range(args.rounds):
        for key, fn in runs.items():
            seconds[key].append(ours.timed(fn))
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {BATCH}, T {STEPS}, median of {args.rounds}:")
    print("| what | sketchrnn s | peer | peer s | sketchrnn / peer |\n|---|---:|---|---:|---:|")
    for what, (_, peers) in pairs.items():
        mine = seconds[(what, "sketchrnn")]
        for who in peers:
            theirs = seconds[(what, who)]
            ratio = statistics.median(a / b for a, b in zip(mine, theirs))
            print(f"| {what} | {statistics.median(mine):.2f} | {who} | {statistics.median(theirs):.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
