"""Backend adapters: sim (in-memory reference), lance, pgvector."""
