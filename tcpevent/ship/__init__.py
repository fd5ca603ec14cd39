"""Shipping events into ClickHouse, nothing lost and nothing doubled
(``tcpevent ship``; docs/fleet.md).

For an agent that embeds it::

    from tcpevent import Tracer
    from tcpevent.ship import ClickHouseClient, Shipper, Spool

    client = ClickHouseClient("http://clickhouse:8123", user="tcpevent", password=secret)
    with Spool("/var/lib/tcpevent/spool", max_bytes=1 << 30) as spool, \\
            Tracer() as tracer, Shipper(client, spool) as shipper:
        shipper.ship(tracer, stop=lambda: stopping)

or ``shipper.add(events)`` with events from anywhere and ``shipper.flush_due()``
now and then.
"""

from tcpevent.ship.clickhouse import ClickHouseClient, ClickHouseError
from tcpevent.ship.identity import HostIdentity, event_id
from tcpevent.ship.schema import COLUMNS, DEFAULT_TABLE, RowEncoder, create_table_sql
from tcpevent.ship.shipper import DEFAULT_BATCH_ROWS, DEFAULT_BATCH_SECONDS, Shipper, ShipStats
from tcpevent.ship.spool import Spool, SpoolError, parse_size

__all__ = [
    "COLUMNS",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_BATCH_SECONDS",
    "DEFAULT_TABLE",
    "ClickHouseClient",
    "ClickHouseError",
    "HostIdentity",
    "RowEncoder",
    "ShipStats",
    "Shipper",
    "Spool",
    "SpoolError",
    "create_table_sql",
    "event_id",
    "parse_size",
]
