"""The manufacturer's own settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from backflush_shared.settings import ServiceSettings


class ManufacturerSettings(ServiceSettings):
    negative_stock_policy: Literal["reject", "allow", "park"] = Field(
        "park", description="What a backflush does when a component lacks stock (items may override it)."
    )
    finished_goods_location: str = Field("FG", description="Where produced lots are received in the ledger.")
