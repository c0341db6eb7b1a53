"""The load mix of ``make load``: colleagues searching and asking, facilitators uploading small notes.

Tokens come from ``COMPAGNON_LOAD_READER_TOKENS`` (comma-separated) and ``COMPAGNON_LOAD_UPLOADER_TOKEN``;
``tests/load/run.py`` starts the server and sets them.
"""

from __future__ import annotations

import os
import random
import uuid

from locust import HttpUser, between, task

READERS = [token for token in os.environ.get("COMPAGNON_LOAD_READER_TOKENS", "").split(",") if token]
UPLOADER = os.environ.get("COMPAGNON_LOAD_UPLOADER_TOKEN", "")
QUERIES = (
    "changement de format",
    "joints de la remplisseuse",
    "préparer un entretien annuel",
    "sécurité consignation",
    "how to onboard a new colleague",
    "réglage de la presse",
    "accueillir un alternant",
    "qualité contrôle balance",
)
QUESTIONS = (
    "Comment préparer un changement de format ?",
    "Que faire avant de consigner une machine ?",
    "How do we welcome a new team member?",
    "Comment réduire les fuites au remontage ?",
)


class Colleague(HttpUser):
    """A signed-in colleague: mostly searches, sometimes asks, and as a facilitator now and then uploads."""

    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        """Pick this user's token."""
        self.reader = {"Authorization": f"Bearer {random.choice(READERS)}"}
        self.uploader = {"Authorization": f"Bearer {UPLOADER}"}

    @task(6)
    def search(self) -> None:
        """Hybrid search."""
        self.client.get(
            "/api/search", params={"q": random.choice(QUERIES), "k": 10}, headers=self.reader, name="search"
        )

    @task(2)
    def ask(self) -> None:
        """A question answered by the offline engines."""
        self.client.post("/api/ask", json={"question": random.choice(QUESTIONS)}, headers=self.reader, name="ask")

    @task(1)
    def upload(self) -> None:
        """A small new note."""
        marker = uuid.uuid4().hex[:12]
        body = {
            "text": f"# Binôme {marker}\n\nKarim Benali : astuce, on note la référence {marker} du joint changé.\n",
            "kind": "pair",
            "community": "maintenance",
            "date": "2026-06-01",
            "visibility": "community",
            "id": f"load-{marker}",
        }
        self.client.post("/api/notes", json=body, headers=self.uploader, name="upload")
