"""The bundled double-12 campaign file on the demo store, with the real encoders.

The file's header promises that inside its window each of its entries on a demo-store topic wins
over that topic's evergreen entry. Campaign precedence now holds only between *twins*
(`knowledge.retrieval.find_twins`), and the demo store keeps last season's campaign entries
(Double 11, spring festival) on the same topics: this season's entry must still be its topic's
twin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.encoders.embedding import UniversalSentenceEncoder
from knowledge.loader import load_kb
from knowledge.retrieval import Retriever
from knowledge.settings import DEMO_STORE_PATH, KnowledgeSettings
from tests.helpers.e5_model import e5_encoder

pytestmark = [pytest.mark.model, pytest.mark.slow]

CAMPAIGN_FILE = Path(__file__).resolve().parents[2] / "knowledge" / "data" / "campaign_double12.yaml"
# The header's "coupons, price protection, shipping time, gifts" (e5 and USE mean-vector cosines
# 0.83-0.85 on this data). "Points" is left out: double points and how points work meet at 0.79,
# below the twin similarity, and may rightly stay apart.
SAME_TOPIC = {
    "d12-store-coupons": "store-coupons",
    "d12-price-protection": "price-protection",
    "d12-shipping": "dispatch-time",
    "d12-gifts": "gifts",
}


def test_each_double12_entry_stands_for_its_everyday_topic(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    entries = (*load_kb(DEMO_STORE_PATH).entries, *load_kb(CAMPAIGN_FILE).entries)
    retriever = Retriever.build(entries, e5_encoder(tmp_path_factory),
                                UniversalSentenceEncoder(threads=1),
                                twin_similarity=KnowledgeSettings.model_fields["twin_similarity"].default)
    ids = [e.id for e in entries]
    twins = {ids[c]: {ids[e] for e in evergreen} for c, evergreen in retriever.twins.items()
             if ids[c].startswith("d12-")}
    assert {c: twins[c] for c in SAME_TOPIC} == {c: {e} for c, e in SAME_TOPIC.items()}
