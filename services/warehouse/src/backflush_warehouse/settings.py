"""The warehouse's own settings: its rack and consignment-storage layout."""

from __future__ import annotations

from pydantic import Field, field_validator

from backflush_shared.settings import ServiceSettings

from backflush_warehouse.domain.storage import InvalidLayoutError, LocationKind, parse_layout


class WarehouseSettings(ServiceSettings):
    racks: str = Field("DC-A1=40,DC-A2=40,DC-B1=40", description="Distribution-center racks: CODE=CAPACITY,...")
    consignment_locations: str = Field("CS-01=200,CS-02=200", description="Consignment storage: CODE=CAPACITY,...")

    @field_validator("racks")
    @classmethod
    def _racks(cls, value: str) -> str:
        return _check(value, LocationKind.RACK)

    @field_validator("consignment_locations")
    @classmethod
    def _consignment(cls, value: str) -> str:
        return _check(value, LocationKind.CONSIGNMENT)


def _check(value: str, kind: LocationKind) -> str:
    try:
        parse_layout(value, kind)
    except InvalidLayoutError as error:
        raise ValueError(str(error)) from None
    return value
