"""Turns uploads into knowledge: sniffing, parsing, chunking and ingestion of session notes."""
