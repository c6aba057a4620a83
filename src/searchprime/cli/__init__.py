"""The ``searchprime`` command line (entry point :func:`searchprime.cli.main.main`); nothing
imports it."""

__all__: list[str] = []
