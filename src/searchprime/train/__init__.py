"""searchprime.train."""
