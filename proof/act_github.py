"""A loopback stand-in for the one api.github.com call a delivery run makes here.

docker/metadata-action asks `GET /repos/OWNER/REPO` for the image labels (title, description,
source URL, licence); act's runs point GITHUB_API_URL at this server, which answers that call
for the bake and 404s everything else (metadata-action then falls back, as it does on GitHub).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def repository(full_name: str, description: str) -> dict[str, object]:
    owner, name = full_name.split("/")
    return {
        "name": name,
        "full_name": full_name,
        "owner": {"login": owner},
        "description": description,
        "html_url": f"https://github.com/{full_name}",
        "default_branch": "main",
        "license": None,
        "topics": [],
    }


@contextmanager
def api_stand_in(full_name: str, description: str) -> Iterator[str]:
    """Serve the repository's `GET /repos/...` on a free loopback port; yield the base URL."""
    body = json.dumps(repository(full_name, description)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path.split("?")[0].rstrip("/") == f"/repos/{full_name}"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if found else b'{"message": "Not Found"}')

        def log_message(self, *_: object) -> None:  # the run's own log says enough
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
