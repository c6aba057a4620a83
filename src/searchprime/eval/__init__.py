"""searchprime.eval."""
