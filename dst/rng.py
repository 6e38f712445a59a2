"""The one source of randomness: a seeded generator with named children.

Each subsystem takes its own child (``rng.fork("faults")``) whose seed is
derived from the parent's seed and the name with blake2b, so adding draws
in one subsystem never shifts another. Probabilities are integer ratios
(parts per million), never float comparisons, so a draw means the same on
every machine.

This module is the only place in ``dst/`` allowed to use the standard
``random`` module, and only through private instances.
"""

from __future__ import annotations

import hashlib
import random as _random_module
from typing import Callable, Sequence, TypeVar

import numpy as np

T = TypeVar("T")

PPM = 1_000_000  # probabilities are parts per million
PPM_BITS = PPM.bit_length()   # chance draws this many bits (a hot path writing it out uses it too)


def fixed_chance(ppm: int) -> bool | None:
    """What ``Rng.chance(ppm)`` answers without drawing (ppm <= 0: never,
    ppm >= PPM: always), or None where it draws: a hot path that writes
    chance out decides once which case a rate is."""
    if ppm <= 0:
        return False
    if ppm >= PPM:
        return True
    return None


def derive_seed(seed: int, name: str) -> int:
    """A child seed: blake2b of the parent seed and the name (stable)."""
    digest = hashlib.blake2b(f"{seed}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class Rng:
    """A deterministic generator. Never shares state with any other."""

    __slots__ = ("seed", "_r", "_np", "_bits")

    def __init__(self, seed: int):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed = seed
        # The generator is seeded at its first draw (the same numbers as
        # seeding it here): many children of a seed never draw at all.
        self._r: _random_module.Random | None = None
        self._np: np.random.Generator | None = None
        self._bits = self._first_bits

    def _gen(self) -> _random_module.Random:
        r = self._r
        if r is None:
            r = self._r = _random_module.Random(self.seed)
            self._bits = r.getrandbits
        return r

    def _first_bits(self, k: int) -> int:
        return self._gen().getrandbits(k)

    def fork(self, name: str) -> "Rng":
        """A named child, independent of how much this one has drawn."""
        return Rng(derive_seed(self.seed, name))

    # Every draw is integer rejection sampling on the generator's
    # getrandbits: below(n) takes n.bit_length() bits until they are under
    # n. That is what random.Random's randrange does (its _randbelow), so
    # the numbers are randrange's; writing the loop here makes them this
    # module's own definition, and lets a hot path write the same loop out
    # on ``bits_source()`` (the same numbers, no call per draw).

    def bits_source(self) -> Callable[[int], int]:
        """The generator's ``getrandbits(k)`` (seeding it now if it has not
        drawn yet). A hot path that draws many small numbers writes below's
        loop out on it: ``x = bits(k)`` then ``while x >= n: x = bits(k)``,
        ``k = n.bit_length()``, is ``below(n)``, the same numbers in the
        same order; mixing it with the methods is the same stream."""
        return self._gen().getrandbits

    def below(self, n: int) -> int:
        """Uniform integer in [0, n)."""
        assert n > 0, n
        k = n.bit_length()
        r = self._bits(k)
        while r >= n:
            r = self._bits(k)
        return r

    def between(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi], both ends included: ``lo + below(hi - lo + 1)``."""
        assert lo <= hi, (lo, hi)
        n = hi - lo + 1
        k = n.bit_length()
        r = self._bits(k)
        while r >= n:
            r = self._bits(k)
        return lo + r

    def chance(self, ppm: int) -> bool:
        """True with probability ppm / 1e6: ``below(PPM) < ppm``, no draw
        at all for ppm <= 0 (never) or ppm >= PPM (always)."""
        if ppm <= 0:
            return False
        if ppm >= PPM:
            return True
        r = self._bits(PPM_BITS)
        while r >= PPM:
            r = self._bits(PPM_BITS)
        return r < ppm

    def choice(self, items: Sequence[T]) -> T:
        """``items[below(len(items))]``, below's loop written out."""
        n = len(items)
        assert n > 0, n
        k = n.bit_length()
        r = self._bits(k)
        while r >= n:
            r = self._bits(k)
        return items[r]

    def weighted(self, items: Sequence[T], weights: Sequence[int]) -> T:
        """Pick by integer weights (at least one positive): ``x = below(sum)``,
        the first item whose running total passes x."""
        total = sum(weights)
        assert total > 0, weights
        k = total.bit_length()     # below(total), written out
        x = self._bits(k)
        while x >= total:
            x = self._bits(k)
        for item, w in zip(items, weights):
            if x < w:
                return item
            x -= w
        raise AssertionError("unreachable")

    def sample(self, items: Sequence[T], k: int) -> list[T]:
        return self._gen().sample(list(items), k)

    def shuffle(self, items: list) -> None:
        self._gen().shuffle(items)

    @property
    def np(self) -> np.random.Generator:
        """A numpy generator seeded from this one's seed (for arrays)."""
        if self._np is None:
            self._np = np.random.Generator(np.random.PCG64(derive_seed(self.seed, "numpy")))
        return self._np
