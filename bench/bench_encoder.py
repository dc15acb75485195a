"""The VAE encoder, forward and backward, packed (torch's pack_padded_sequence, as the layer with
lengths runs it) against unpacked (each direction over the padded batch, read at length - 1, as
``SketchRNN.encode`` runs it); the latents they give are compared too.

    python bench/bench_encoder.py [--batch 100] [--steps 250] [--threads 2]
"""

import argparse
import time

import torch

from sketchrnn.model import SketchRNN, SketchRNNConfig


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=100, help="drawings per batch (default: 100)")
    parser.add_argument("--steps", type=int, default=250, help="longest drawing, in points (default: 250)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of each (default: 3)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SketchRNN(SketchRNNConfig(mode="vae", encoder_hidden=256, z_size=128, dropout=0.0))
    x = torch.randn(args.steps, args.batch, 5)
    lengths = torch.randint(20, args.steps + 1, (args.batch,))
    lengths[0] = args.steps

    def packed():
        _, [(forward, backward)] = model.encoder(x, lengths)
        return model.to_latent(torch.cat([forward[0], backward[0]], -1)).chunk(2, -1)

    def unpacked():
        return model.encode(x, lengths)

    with torch.no_grad():
        difference = max(float((a - b).abs().max()) for a, b in zip(packed(), unpacked()))
    print(f"largest difference between the latents: {difference:.1e}")
    for name, run in (("packed", packed), ("unpacked", unpacked)):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            mu, sigma_hat = run()
            (mu.sum() + sigma_hat.sum()).backward()
            times.append(time.perf_counter() - start)
        print(f"{name}: forward + backward {min(times):.2f} s (best of {args.repeats})")


if __name__ == "__main__":
    main()
