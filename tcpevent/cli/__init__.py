"""The ``tcpevent`` command line: :mod:`.command` parses it and runs a
mode, :mod:`.render` prints events and connections, :mod:`.common` holds
what the subcommands (``tcpevent exporter``) share with it."""

from tcpevent.cli.command import main

__all__ = ["main"]
