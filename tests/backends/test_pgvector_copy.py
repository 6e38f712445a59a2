"""The pgvector adapter's COPY bytes, built per chunk with numpy
(``backends.pgvector.copy_chunks``), against psycopg's own row-by-row
binary COPY of the same rows (``write_row`` with pgvector's dumper and
``Jsonb``), byte for byte; and a batch of mixed ids and attributes cut
into several chunks, read back from a real server."""

import os
from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.copy import Copy, Writer
from psycopg.types.json import Jsonb

import backends.pgvector as pgv
from dst import pg_embedded
from dst.backend import BackendConfig

ROOT = Path(__file__).resolve().parents[2]
PGDATA = ROOT / pg_embedded.SERVERS[pg_embedded.DEFAULT_SERVER].default_dir   # pg18
PREFIX = f"t{os.getpid()}_"


@pytest.fixture(scope="module")
def dsn():
    return os.environ.get(pg_embedded.DSN_ENV) or pg_embedded.ensure_server(PGDATA).dsn()


@pytest.fixture(scope="module")
def conn(dsn):
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")   # as the adapter does on open (a fresh server has none)
        register_vector(c)
        yield c


class _Capture(Writer):
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data


def psycopg_rows(conn, ids, matrix, attrs):
    """Each row as psycopg encodes it (columns embedding, attrs, id)."""
    out = []
    for k, (id_, vec) in enumerate(zip(ids, matrix)):
        w = _Capture()
        with conn.cursor() as cur, Copy(cur, binary=True, writer=w) as cp:
            cp.set_types(["vector", "jsonb", "text"])
            cp.write_row((vec, Jsonb(attrs[k] if attrs else {}), id_))
        assert bytes(w.data[:len(pgv.COPY_SIGNATURE)]) == pgv.COPY_SIGNATURE
        assert bytes(w.data[-2:]) == pgv.COPY_TRAILER
        out.append(bytes(w.data[len(pgv.COPY_SIGNATURE):-2]))
    return out


def our_rows(ids, matrix, attrs):
    stream, rows, first = b"", [], True
    for payload, ends in pgv.copy_chunks(ids, matrix, attrs):
        start = len(pgv.COPY_SIGNATURE) if first else 0
        if first:
            assert payload[:start] == pgv.COPY_SIGNATURE
        first = False
        assert len(ends) and int(ends[-1]) == len(payload)
        for end in ends:
            rows.append(payload[start:int(end)])
            start = int(end)
        stream += payload
    return stream, rows


def _matrix(n, dim, seed=0):
    g = np.random.default_rng(seed)
    m = g.standard_normal((n, dim)).astype(np.float32)
    m[0, 0] = np.float32(1e-30)          # a tiny value and a negative zero, bit for bit
    m[-1, -1] = np.float32(-0.0)
    return m


def test_same_length_rows_are_psycopgs_bytes_in_order(conn):
    ids = [f"v{i:07d}" for i in range(50)]
    m = _matrix(50, 7)
    stream, rows = our_rows(ids, m, None)
    expected = psycopg_rows(conn, ids, m, None)
    assert rows == expected
    assert stream == pgv.COPY_SIGNATURE + b"".join(expected)


def test_mixed_ids_and_attributes_are_psycopgs_rows(conn, monkeypatch):
    # Several chunks (a small chunk size), ids of many lengths and UTF-8
    # widths, attributes of every type and none: the same rows, grouped.
    monkeypatch.setattr(pgv, "COPY_CHUNK_BYTES", 200)
    ids = ["a", "bb", "é", "日本語", "x" * 256, "💡" * 3, "c", "dd", "tab\there", "quote'\"\\"]
    attrs = [{}, {"k": 1}, {"s": "é\u2028"}, {}, {"b": True, "n": -2**63}, {}, {"k": 2}, {},
             {"long": "y" * 300}, {}]
    m = _matrix(len(ids), 3, seed=1)
    _, rows = our_rows(ids, m, attrs)
    expected = psycopg_rows(conn, ids, m, attrs)
    assert len(rows) == len(ids)
    assert sorted(rows) == sorted(expected)


def test_a_batch_in_several_chunks_reads_back(dsn, monkeypatch):
    monkeypatch.setattr(pgv, "COPY_CHUNK_BYTES", 64)       # one row per chunk at dim 5
    b = pgv.open_backend(BackendConfig(dim=5, location=dsn, namespace=PREFIX + "copychunks", fresh=True))
    try:
        ids = ["a", "bb", "é", "日本語", "x" * 256, "c"]
        m = _matrix(len(ids), 5, seed=2)
        attrs = [{}, {"k": 1}, {}, {"s": "v"}, {}, {"b": False}]
        b.store_batch([(i, v, a) for i, v, a in zip(ids, m, attrs)])
        assert b.count() == len(ids)
        for i, v, a in zip(ids, m, attrs):
            assert np.array_equal(b.get(i), v) and b.get_attrs(i) == a
        b.store_batch([(i, -v) for i, v in zip(ids, m)])     # the upsert replaces vector and attributes
        for i, v in zip(ids, m):
            assert np.array_equal(b.get(i), -v) and b.get_attrs(i) == {}
        assert b.count() == len(ids)
    finally:
        b.drop()
