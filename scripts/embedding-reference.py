#!/usr/bin/env python3
"""Reference vectors for colm's embedding test (crates/colm-embed/tests/embed_real.rs).

Computes, with the Python `sentence-transformers` package, the embeddings of the sentences
below (the first 8 GSM8K dev questions and a few harder cases) from all-MiniLM-L6-v2 as colm
caches it, and writes them as JSON. CI reads the committed output and needs no torch.

Usage: scripts/embedding-reference.py MODEL_DIR [OUT]
  MODEL_DIR: the model's directory in colm's cache (`colm models path all-minilm-l6-v2`)
  OUT: default tests/fixtures/embeddings/all-minilm-l6-v2.json
"""
import json
import pathlib
import sys

import sentence_transformers

root = pathlib.Path(__file__).resolve().parent.parent
model_dir = sys.argv[1]
out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else (
    root / "tests/fixtures/embeddings/all-minilm-l6-v2.json")

with open(root.parent / "shared/data/gsm8k/dev.jsonl") as f:
    questions = [json.loads(line)["question"] for _, line in zip(range(8), f)]
sentences = questions + [
    "Hello",
    "THE SAME WORDS IN CAPITALS, with punctuation!?",
    "Ünïcödé, emoji 🙂 and 中文 mixed in one line",
    # Longer than the model's 256-token limit: both sides truncate there.
    " ".join(f"word{i} and number {i * 7}" for i in range(120)),
]

model = sentence_transformers.SentenceTransformer(model_dir, device="cpu")
vectors = model.encode(sentences, normalize_embeddings=True, batch_size=4)
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps({
    "model": "all-minilm-l6-v2",
    "computed_by": f"sentence-transformers {sentence_transformers.__version__}",
    "sentences": sentences,
    "embeddings": [[round(float(x), 7) for x in v] for v in vectors],
}, ensure_ascii=False) + "\n")
print(f"wrote {len(sentences)} vectors of {len(vectors[0])} to {out}")
