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

    def uniforms(self, name: str, shape: int | tuple[int, ...], start: int = 0) -> np.ndarray:
        """A block of uniforms in [0, 1) from the stream ``name``, from its row ``start`` on: rows
        ``start ..`` of a longer block, exactly (a uniform is one step of PCG64, which can jump
        ahead), so a long run can draw its patients a block at a time."""
        gen = self.generator(name)
        if start:
            per_row = int(np.prod(shape[1:])) if isinstance(shape, tuple) else 1
            gen.bit_generator.advance(start * per_row)
        return gen.random(shape)
