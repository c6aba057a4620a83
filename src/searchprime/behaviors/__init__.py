"""searchprime.behaviors."""
