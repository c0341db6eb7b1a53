"""Security tests: what each role may read, probed over HTTP."""
