"""Browser tests of the web app (headless Chromium against a live server) and its static checks."""
