"""Tests of searchprime.llm; fake_openai.py is a reusable fault-injecting OpenAI server."""
