"""searchprime.tasks."""
