"""searchprime.data."""
