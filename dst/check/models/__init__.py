"""Pure sequential models for the linearizability checker.

``vector`` is the oracle of the harness (id -> vector, exact cosine top-k).
"""

from dst.check.models.vector import VectorModel, VectorState

__all__ = ["VectorModel", "VectorState"]
