"""searchprime.world."""
