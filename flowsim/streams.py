"""Named random streams: one independent generator per (seed, replication, name).

``SeedSequence(seed, spawn_key=(replication, crc32(name)))`` makes streams reproducible, distinct,
and stable: adding a stream moves no other. There is no global random state anywhere in flowsim.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


class Streams:
    """The random streams of one replication."""

    def __init__(self, seed: int, replication: int) -> None:
        self.seed = int(seed)
        self.replication = int(replication)

    def generator(self, name: str) -> np.random.Generator:
        """A fresh generator for the stream ``name`` (the same name always gives the same draws)."""
        ss = np.random.SeedSequence(self.seed, spawn_key=(self.replication, stream_key(name)))
        return np.random.Generator(np.random.PCG64(ss))

    def uniforms(self, name: str, shape: int | tuple[int, ...]) -> np.ndarray:
        """A block of uniforms in [0, 1) from the stream ``name``."""
        return self.generator(name).random(shape)


class BlockStream:
    """Values handed out one at a time from blocks drawn ahead, for draws whose count is not known
    in advance (readmission episodes). Python floats from a list: cheap to take in the event loop."""

    def __init__(self, generator: np.random.Generator, width: int, block: int = 1024) -> None:
        self._gen = generator
        self._width = width
        self._block = block
        self._rows: list[np.ndarray] = []
        self._next = 0

    def take(self) -> np.ndarray:
        """The next row of ``width`` uniforms."""
        if self._next == len(self._rows):
            self._rows = list(self._gen.random((self._block, self._width)))
            self._next = 0
        row = self._rows[self._next]
        self._next += 1
        return row
