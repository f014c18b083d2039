"""Writes paraphrases of GSM8K dev questions with a served model, and near-duplicates whose
numbers were changed (bench/paraphrase-sharing.sh).

Usage: python3 bench/lib/paraphrase.py BASE_URL MODEL DATA N OUT
  Appends to OUT (JSON lines {item, kind, original, variant}); items already in OUT are skipped,
  so a stopped run resumes.
  - kind "paraphrase": the model's rewording of item's question (greedy, prompt below);
  - kind "perturbed": the question with one number changed (each of its first three distinct
    numbers in turn, +1; a number word becomes the next one), made here without a model.
"""
import concurrent.futures
import json
import os
import re
import sys

import openai

base, model, data, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=600)
questions = []
with open(data) as f:
    for i, line in zip(range(n), f):
        questions.append((i + 1, json.loads(line)["question"]))
done = set()
if os.path.exists(out):
    with open(out) as f:
        for line in f:
            r = json.loads(line)
            done.add((r["item"], r["kind"]))

PROMPT = (
    "Rewrite the following math word problem in different words, as a different person would "
    "ask it. Keep every number, name and quantity exactly as given, and keep the question "
    "asked. Reply with the rewritten problem only.\n\nProblem: {q}"
)

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def perturbed(q):
    """Up to three variants of q, each with one number changed."""
    out, seen = [], set()
    for m in re.finditer(r"\d[\d,]*(?:\.\d+)?|\b(?:" + "|".join(WORDS[:-1]) + r")\b", q):
        tok = m.group(0)
        if tok in seen:
            continue
        seen.add(tok)
        if tok in WORDS:
            new = WORDS[WORDS.index(tok) + 1]
        else:
            digits = tok.replace(",", "")
            new = str(int(float(digits)) + 1) if "." not in digits else f"{float(digits) + 1:g}"
        out.append(q[: m.start()] + new + q[m.end():])
        if len(out) == 3:
            break
    return out


def paraphrase(item, q):
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT.format(q=q)}],
        max_tokens=256, temperature=0,
    )
    text = r.choices[0].message.content.strip()
    text = re.sub(r"^(rewritten problem|problem)\s*:\s*", "", text, flags=re.I).strip()
    return {"item": item, "kind": "paraphrase", "original": q, "variant": text}


with open(out, "a") as f:
    for item, q in questions:
        if (item, "perturbed") not in done:
            for v in perturbed(q):
                f.write(json.dumps({"item": item, "kind": "perturbed", "original": q,
                                    "variant": v}) + "\n")
    f.flush()
    todo = [(item, q) for item, q in questions if (item, "paraphrase") not in done]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for row in pool.map(lambda iq: paraphrase(*iq), todo):
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(f"item {row['item']}: {row['variant'][:70]}", flush=True)
