"""searchprime."""
