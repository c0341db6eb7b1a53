"""Drafting best-practice entries from a note: with an LLM, or with the offline extractor."""
