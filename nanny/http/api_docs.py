"""GET /api/docs: Swagger UI over the OpenAPI document, every file served from our own origin.

Swagger UI's distribution comes from the swagger-ui-py package (its `static/` folder, installed
from PyPI with the rest of our dependencies, not copied into the repo) and is served by a static
route; the page loads it and our own start-up script (static/js/api-docs.js) instead of the
usual inline snippet, so it runs under the pages' CSP and fetches nothing from another site."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import aiohttp_jinja2
from aiohttp import web

routes = web.RouteTableDef()

SWAGGER_UI_PREFIX = "/static/swagger-ui/"


def swagger_ui_dist() -> Path:
    """The folder of Swagger UI's built files inside the installed swagger-ui-py package (found
    without importing it: we need its files, not its framework adapters)."""
    spec = find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed (pip install -e .)")
    dist = Path(next(iter(spec.submodule_search_locations))) / "static"
    if not (dist / "swagger-ui-bundle.js").is_file():
        raise RuntimeError(f"no swagger-ui-bundle.js in {dist}")
    return dist


def add_swagger_ui_files(app: web.Application) -> None:
    # Before the pages' own /static/ route, which would otherwise answer this prefix too.
    app.router.add_static(SWAGGER_UI_PREFIX, swagger_ui_dist(), name="swagger_ui")


# Not an @endpoint: a page for people, not an operation of the API it describes.
@routes.get("/api/docs", name="api_docs")
async def api_docs(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("api_docs.html", request, {})
