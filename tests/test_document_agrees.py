"""The findings of schemathesis --checks all (ST202, ST204, ST205), each kept fixed by a quick
test of its own: the document says what the server accepts, and a method a path does not have
is 405 with the JSON envelope."""

from __future__ import annotations

from nanny.keys import POOL
from tests.factories import make_owner, make_sitter


async def test_a_method_a_fixed_path_lacks_is_405(client):
    owner = await make_owner(client)
    # PUT /api/services/{id} exists, but 'search' is a path of its own, with GET only.
    for method in ("PUT", "DELETE", "POST"):
        resp = await client.request(method, "/api/services/search", headers=owner.headers)
        assert resp.status == 405, await resp.text()
        assert resp.headers["Allow"] == "GET"
        assert (await resp.json())["code"] == "method_not_allowed"
    resp = await client.request("OPTIONS", "/api/services/search")
    assert resp.status == 405 and resp.headers["Allow"] == "GET"
    assert (await client.head("/api/services/search")).status == 200
    assert (await client.get("/api/services/search")).status == 200


async def test_whole_numbers_written_as_floats_are_integers(client):
    """JSON Schema's integer includes 13.0; the strict bodies refused it."""
    body = {
        "full_name": "Aru",
        "email": "aru@example.kz",
        "phone": "+7 701 123 45 67",
        "password": "long-enough",
        "experience_years": 7.0,
        "certificates": "",
        "preferences": "",
        "location": "Almaty",
    }
    resp = await client.post("/api/auth/register/sitter", json=body)
    assert resp.status == 201, await resp.text()
    years = await client.app[POOL].fetchval("SELECT experience_years FROM sitters")
    assert years == 7
    resp = await client.post(
        "/api/auth/register/sitter", json=body | {"email": "b@example.kz", "experience_years": 7.5}
    )
    assert resp.status == 400 and (await resp.json())["details"]["field"] == "experience_years"
    # The owner's ignored sitter fields take 0 or "", not false.
    owner = {k: body[k] for k in ("full_name", "phone", "password")} | {"email": "c@example.kz"}
    resp = await client.post("/api/auth/register/owner", json=owner | {"experience_years": False})
    assert resp.status == 400
    resp = await client.post("/api/auth/register/owner", json=owner | {"experience_years": 0.0})
    assert resp.status == 201


async def test_the_document_says_what_is_refused(client):
    await make_sitter(client)
    doc = await (await client.get("/api/openapi.json")).json()
    search = {
        p["name"]: p["schema"] for p in doc["paths"]["/api/services/search"]["get"]["parameters"]
    }
    assert search["min_rating"]["anyOf"][0] == {"type": "number", "minimum": 0, "maximum": 5}
    assert search["max_price"]["anyOf"][0]["maximum"] == 1_000_000
    # Strings refuse NUL, and say so.
    assert search["location"]["anyOf"][0]["pattern"] == "^[^\\x00]*$"
    login = doc["components"]["schemas"]["Login"]["properties"]
    assert login["password"]["pattern"] == "^[^\\x00]*$"
    assert "\\x00" in login["email"]["pattern"]
    assert doc["components"]["schemas"]["RegisterOwner"]["properties"]["phone"]["pattern"]
    resp = await client.get("/api/services/search?min_rating=661")
    assert resp.status == 400 and (await resp.json())["details"]["field"] == "min_rating"
