from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from kefu.redis import async_client
from knowledge.models import Category, Entry, KnowledgeBase
from knowledge.service import KnowledgeIndex, build_index
from knowledge.settings import KnowledgeSettings
from tests.knowledge.fakes import HashingEncoder

CST = timezone(timedelta(hours=8))
DOUBLE11_START = datetime(2025, 11, 1, 0, 0, tzinfo=CST)
DOUBLE11_END = datetime(2025, 11, 11, 23, 59, 59, tzinfo=CST)
# Hashed n-grams are far less alike than e5 vectors: with the HashingEncoder, a campaign entry and
# its evergreen twin ("双11期间多久发货" / "下单后多久发货") meet at about 0.73, not e5's 0.82.
FAKE_TWIN_SIMILARITY = 0.5


def fake_settings(**values: Any) -> KnowledgeSettings:
    """Settings for indexes built with the `HashingEncoder` (its twin similarity)."""
    return KnowledgeSettings(twin_similarity=FAKE_TWIN_SIMILARITY, **values)


def shop_kb() -> KnowledgeBase:
    """A small shop knowledge base with one campaign entry shadowing an evergreen one."""
    return KnowledgeBase(entries=(
        Entry(id="return-policy", question="支持七天无理由退货吗",
              variants=("可以退货吗", "怎么申请退货", "can I return my order"),
              answer="支持七天无理由退货。", category=Category.AFTERSALE),
        Entry(id="ship-time", question="下单后多久发货",
              variants=("什么时候发货", "几天能发货", "when will you ship"),
              answer="付款后48小时内发货。", category=Category.LOGISTICS),
        Entry(id="ship-time-d11", question="双11期间多久发货",
              variants=("双十一什么时候发货", "大促期间几天发货", "什么时候发货"),  # a twin
              answer="双11期间付款后5天内发货。", category=Category.LOGISTICS,
              campaign="double11", valid_from=DOUBLE11_START, valid_until=DOUBLE11_END),
        Entry(id="invoice", question="可以开发票吗",
              variants=("怎么开发票", "能开增值税发票吗", "do you issue invoices"),
              answer="可以，在订单详情里申请电子发票。", category=Category.AFTERSALE),
        Entry(id="pay-methods", question="支持哪些付款方式",
              variants=("可以用支付宝吗", "能用微信支付吗", "do you accept credit cards"),
              answer="支持支付宝、微信支付和银行卡。", category=Category.PAYMENT),
        Entry(id="points", question="积分怎么用",
              variants=("积分可以抵现吗", "会员积分有什么用"),
              answer="100积分抵1元，下单时勾选使用。", category=Category.ACCOUNT),
    ))


@pytest.fixture(scope="session")
def encoder() -> HashingEncoder:
    return HashingEncoder()


@pytest.fixture(scope="session")
def shop_index(encoder: HashingEncoder) -> KnowledgeIndex:
    return build_index(shop_kb(), encoder, settings=fake_settings())


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> KnowledgeSettings:
    return fake_settings(redis_url=redis_url, demo_store=tmp_path / "no-demo.yaml",
                         live_poll_seconds=30.0)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A Redis client on the test database (``redis`` tests), closed afterwards."""
    redis = async_client(redis_url)
    yield redis
    await redis.aclose()
