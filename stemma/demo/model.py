"""A small real classifier in numpy: enough to make the demo's curves honest.

A one-hidden-layer MLP (or plain logistic regression) trained with minibatch SGD on a
synthetic two-class "support ticket" dataset. Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def make_raw(
    samples: int = 4000, features: int = 32, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Raw tickets: two overlapping Gaussian classes with a non-linear boundary (so the
    MLP wins), features on uneven scales and offsets (so standardising matters)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, features))
    w = rng.normal(size=features)
    logits = x @ w + 1.5 * np.sin(2 * x[:, 0]) * x[:, 1]
    y = (logits + rng.normal(scale=1.0, size=samples) > 0).astype(np.float64)
    scale = np.exp(rng.uniform(-1.0, 2.0, size=features))
    offset = rng.uniform(-5.0, 5.0, size=features)
    return x * scale + offset, y


def preprocess(
    x: np.ndarray, y: np.ndarray, seed: int = 0
) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """Shuffle, split 70/15/15 into train/validation/test, standardise every feature with
    the training split's mean and standard deviation; returns the splits, mean and std."""
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    a, b = int(len(x) * 0.7), int(len(x) * 0.85)
    mean, std = x[:a].mean(axis=0), x[:a].std(axis=0) + 1e-9
    z = (x - mean) / std
    return Dataset(z[:a], y[:a], z[a:b], y[a:b], z[b:], y[b:]), mean, std


def make_dataset(samples: int = 4000, features: int = 32, seed: int = 0) -> Dataset:
    """:func:`make_raw` then :func:`preprocess`."""
    return preprocess(*make_raw(samples, features, seed), seed=seed)[0]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


class Classifier:
    """``architecture`` is ``"mlp"`` (hidden layer of ``hidden`` tanh units) or ``"logreg"``."""

    def __init__(
        self, features: int, architecture: str = "mlp", hidden: int = 32, seed: int = 0
    ) -> None:
        rng = np.random.default_rng(seed)
        self.architecture = architecture
        if architecture == "mlp":
            self.w1 = rng.normal(scale=1 / np.sqrt(features), size=(features, hidden))
            self.b1 = np.zeros(hidden)
            self.w2 = rng.normal(scale=1 / np.sqrt(hidden), size=hidden)
        elif architecture == "logreg":
            self.w2 = rng.normal(scale=0.01, size=features)
        else:
            raise ValueError(f"unknown architecture {architecture!r}: use 'mlp' or 'logreg'")
        self.b2 = 0.0

    def _hidden(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x @ self.w1 + self.b1) if self.architecture == "mlp" else x

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(self._hidden(x) @ self.w2 + self.b2)

    def loss_and_accuracy(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        p = np.clip(self.predict_proba(x), 1e-7, 1 - 1e-7)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        return loss, float(np.mean((p > 0.5) == (y > 0.5)))

    def sgd_step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        """One minibatch step; returns the minibatch loss before the update."""
        h = self._hidden(x)
        p = _sigmoid(h @ self.w2 + self.b2)
        pc = np.clip(p, 1e-7, 1 - 1e-7)
        loss = float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc)))
        g = (p - y) / len(y)
        grad_w2 = h.T @ g
        grad_b2 = float(g.sum())
        if self.architecture == "mlp":
            gh = np.outer(g, self.w2) * (1 - h**2)
            self.w1 -= lr * (x.T @ gh)
            self.b1 -= lr * gh.sum(axis=0)
        self.w2 -= lr * grad_w2
        self.b2 -= lr * grad_b2
        return loss

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Classifier:
        """The model :meth:`state` saved (e.g. from a checkpoint's ``weights.npz``)."""
        arch = "mlp" if "w1" in state else "logreg"
        model = cls(len(state["w1"] if arch == "mlp" else state["w2"]), arch)
        for key, value in state.items():
            setattr(model, key, float(value) if key == "b2" else np.array(value))
        return model

    def state(self) -> dict[str, np.ndarray]:
        out = {"w2": self.w2, "b2": np.asarray(self.b2)}
        if self.architecture == "mlp":
            out |= {"w1": self.w1, "b1": self.b1}
        return out
