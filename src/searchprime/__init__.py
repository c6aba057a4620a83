"""searchprime."""

__all__: list[str] = []
