"""searchprime.llm."""
