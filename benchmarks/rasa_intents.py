"""Parse texts with a trained Rasa NLU model (run with the Rasa venv's python).

Used by benchmarks/retrieval.py to measure Rasa's intent/confidence as a retrieval signal:

    .venv-rasa/bin/python benchmarks/rasa_intents.py --model M.tar.gz --texts in.json --out out.json

``in.json`` is a JSON list of texts; ``out.json`` maps each text to its top intent, confidence and
the full ranking.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


async def parse_all(model: Path, texts: list[str]) -> dict[str, dict[str, object]]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    out: dict[str, dict[str, object]] = {}
    for text in texts:
        parsed = await agent.parse_message(text)
        intent = parsed.get("intent") or {}
        ranking = {r["name"]: r["confidence"] for r in parsed.get("intent_ranking") or []}
        out[text] = {
            "intent": intent.get("name"),
            "confidence": intent.get("confidence"),
            "ranking": ranking,
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--texts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    texts = json.loads(args.texts.read_text(encoding="utf-8"))
    result = asyncio.run(parse_all(args.model, texts))
    args.out.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
