"""Test suite (a package so helpers such as tests.llm.fake_openai can be imported)."""
