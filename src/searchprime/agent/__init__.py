"""searchprime.agent."""
