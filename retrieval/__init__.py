"""Knowledge base: embedders, vector and lexical indexes, SQL records and search."""
