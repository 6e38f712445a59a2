"""vector-dst: deterministic simulation testing for vector stores."""

from dst.backend import BackendConfig, SearchHit, VectorBackend
from dst.errors import BackendError, InvalidInput

__all__ = ["BackendConfig", "SearchHit", "VectorBackend", "BackendError", "InvalidInput"]
__version__ = "0.1.0"
