"""The web dashboard at ``/``; the API stays under ``/v1``.

The front-end's source is ``server/dashboard/`` (Preact + Chart.js, see its README); ``make
install`` runs ``npm ci`` and the esbuild build there, which writes ``dashboard/dist/``
(gitignored): ``index.html`` and ``assets/``. Every asset is served from here, so the dashboard
works with no internet; a Content-Security-Policy keeps the page from loading anything else.

When ``dist/`` was not built the server still starts and serves the API; ``/`` then says how
to build the dashboard. Whether it was built is decided when the app is created.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DIST = Path(__file__).parent / "dashboard" / "dist"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tunesmith</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>tunesmith</h1>
<p>The API is running at <a href="/v1/files"><code>/v1</code></a>
(interactive documentation at <a href="/docs"><code>/docs</code></a>).</p>
<p><strong>The web dashboard is not built.</strong> Build it with <code>make install</code>, or
with <code>npm ci &amp;&amp; npm run build</code> in <code>{source}</code>, then restart
<code>tunesmith serve</code>.</p>
</body></html>
"""


def mount_dashboard(app: FastAPI, dist: Path = DIST) -> None:
    """Serve ``dist/index.html`` at ``/`` and ``dist/assets/`` at ``/assets``."""
    index = dist / "index.html"
    built = index.is_file() and (dist / "assets").is_dir()
    if built:
        app.mount("/assets", StaticFiles(directory=dist / "assets"), name="assets")

    @app.get("/", include_in_schema=False, response_model=None)
    def dashboard() -> Response:
        if not built:
            page = NOT_BUILT.format(source=dist.parent)
            return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
        headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}
        return FileResponse(index, media_type="text/html", headers=headers)
