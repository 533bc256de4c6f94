"""The DuckDB warehouse: schema (numbered migrations), views, and the queries newsmon runs."""

from newsmon.warehouse.db import WarehouseBusy, migrate, open_reader, open_warehouse, open_writer

__all__ = ["WarehouseBusy", "migrate", "open_reader", "open_warehouse", "open_writer"]
