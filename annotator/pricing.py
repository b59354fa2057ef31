from __future__ import annotations

from decimal import Decimal

from django.conf import settings

PER_TOKEN = Decimal(1) / Decimal(1_000_000)


def model_price(model: str) -> tuple[Decimal, Decimal] | None:
    """USD per 1M (input, output) tokens; a dated model name ("gpt-4o-mini-2024-07-18")
    falls back to its undated price. None when the model is not in the table."""
    prices = settings.ANNOTATOR_PRICES
    name = model
    while name:
        if name in prices:
            price_in, price_out = prices[name]
            return Decimal(str(price_in)), Decimal(str(price_out))
        name = name.rpartition("-")[0]
    return None


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    price = model_price(model)
    if price is None:
        return Decimal(0)
    price_in, price_out = price
    return ((price_in * input_tokens + price_out * output_tokens) * PER_TOKEN).quantize(
        Decimal("0.000001")
    )
