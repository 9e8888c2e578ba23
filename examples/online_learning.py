"""Online logistic regression on a non-stationary stream, one sample at a time.

    python examples/online_learning.py [--samples 60000]

The stream: 12 features whose scales span 1e-3 .. 1e4, whose means drift (slowly, plus a jump
halfway), and a label given by a fixed linear rule on the *standardized* signal. A logistic model
is trained by plain SGD, one sample per step, on three versions of the input:

  raw        no normalization (the large features dominate the gradient; SGD diverges or crawls)
  exact      RunningStats(momentum=None): statistics of everything seen so far
  momentum   RunningStats(momentum=0.01): exponentially weighted, follows the drift

Prints the running (prequential: predict, then learn) accuracy and log-loss per window, and the
time per sample of the normalization step (update_normalize into a preallocated out).
"""

import argparse
import time

import numpy as np

from simdnorm import RunningStats

FEATURES = 12


def make_stream(samples, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.logspace(-3, 4, FEATURES)
    t = np.arange(samples)[:, None] / samples
    drift = scales * (3.0 * t + 5.0 * (t > 0.5))  # slow drift and a jump, in units of each feature's scale
    base = 10.0 * scales * rng.standard_normal(FEATURES)  # large constant offsets
    signal = rng.standard_normal((samples, FEATURES))
    x = (base + drift + signal * scales).astype(np.float32)
    w_true = rng.standard_normal(FEATURES)
    logits = 2.0 * signal @ w_true
    y = (rng.random(samples) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)
    return x, y


class Logistic:
    def __init__(self, lr):
        self.w = np.zeros(FEATURES)
        self.b = 0.0
        self.lr = lr

    def predict(self, z):
        s = float(np.dot(self.w, z)) + self.b
        s = max(min(s, 40.0), -40.0)
        return 1.0 / (1.0 + np.exp(-s))

    def learn(self, z, p, y):
        g = p - y
        self.w -= self.lr * g * z
        self.b -= self.lr * g


def run(name, x, y, normalizer, lr, windows):
    model = Logistic(lr)
    out = np.empty(FEATURES, np.float32)
    n = len(x)
    edges = np.linspace(0, n, windows + 1).astype(int)
    correct = np.zeros(n, bool)
    loss = np.zeros(n)
    norm_ns = 0
    for i in range(n):
        row = x[i]
        if normalizer is None:
            z = row.astype(np.float64)
        else:
            t0 = time.perf_counter_ns()
            normalizer.update_normalize(row, out=out)
            norm_ns += time.perf_counter_ns() - t0
            z = out
        p = model.predict(z)
        correct[i] = (p >= 0.5) == (y[i] == 1.0)
        q = min(max(p, 1e-12), 1 - 1e-12)
        loss[i] = -(y[i] * np.log(q) + (1 - y[i]) * np.log(1 - q))
        model.learn(z, p, y[i])
    cells = [f"{correct[a:b].mean():.3f}/{loss[a:b].mean():6.3f}" for a, b in zip(edges[:-1], edges[1:])]
    per_sample = f"{norm_ns / n:7.0f} ns" if normalizer is not None else "      -"
    print(f"{name:<9} | {' | '.join(cells)} | {correct.mean():.3f} | {loss.mean():7.3f} | {per_sample}")
    return correct.mean()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--windows", type=int, default=6)
    args = parser.parse_args()
    x, y = make_stream(args.samples)
    print(f"{args.samples} samples, {FEATURES} features, scales 1e-3..1e4, drifting means (jump at 50%)")
    print("prequential accuracy/log-loss per window; normalization time per sample (update_normalize, out=)\n")
    head = " | ".join(f"window {k + 1:<6}" for k in range(args.windows))
    print(f"{'input':<9} | {head} | acc   | loss    | normalize")
    t0 = time.perf_counter()
    # Raw inputs need a tiny learning rate to not diverge on the 1e4-scale features.
    run("raw", x, y, None, 1e-9, args.windows)
    run("exact", x, y, RunningStats(FEATURES), 0.02, args.windows)
    run("momentum", x, y, RunningStats(FEATURES, momentum=0.01), 0.02, args.windows)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
