"""searchprime.search."""
