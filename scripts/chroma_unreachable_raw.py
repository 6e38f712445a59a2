"""Play a seeds/ case of store ops on chromadb alone (no vector-dst adapter), then query
the way the harness's probe does, to show a Chroma finding without the adapter.

    python scripts/chroma_unreachable_raw.py seeds/chroma-near-duplicates-unreachable.json [space]

Each store is one single-row ``upsert`` into a fresh collection (``hnsw:space``
cosine unless given), in the case's order; then ``query(n_results=count() + 1)``
by the case's probe vector. Prints the rows count() has and the rows query returned.
Exit 1 when query leaves a live row out.
"""

import base64
import json
import sys
import tempfile

import numpy as np


def main() -> int:
    import chromadb
    from chromadb.config import Settings

    case = json.load(open(sys.argv[1]))
    space = sys.argv[2] if len(sys.argv) > 2 else "cosine"
    s = case["schedule"]
    vecs = [np.frombuffer(base64.b64decode(v["data"]), dtype="<f4") for v in s["vectors"]]
    ops = [op for client in s["clients"] for op in client]
    with tempfile.TemporaryDirectory() as path:
        client = chromadb.PersistentClient(path, settings=Settings(anonymized_telemetry=False))
        col = client.create_collection("repro", metadata={"hnsw:space": space}, embedding_function=None)
        for op in ops:
            if op["f"] != "store":
                raise SystemExit(f"only store ops are played here, got {op['f']!r}")
            col.upsert(ids=[op["value"]["id"]], embeddings=vecs[op["value"]["vector"]][None, :])
        n = col.count()
        got = col.query(query_embeddings=vecs[s["probe_query"]][None, :], n_results=n + 1,
                        include=["distances"])["ids"][0]
        live = set(col.get(include=[])["ids"])
        missing = sorted(live - set(got))
        print(f"chromadb {chromadb.__version__}, space {space}: count() {n}, get() {len(live)} ids, "
              f"query(n_results={n + 1}) {len(got)} ids; missing {missing}")
        client.close()
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
