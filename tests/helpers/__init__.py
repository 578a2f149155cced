"""Test helpers: offline fixture models, a local OpenAI-compatible server, backend agreement."""
