"""Languages, times and money: the catalogs cover every string of the templates, scripts and
page code, in real Russian and Kazakh with their plural forms; every page rendered in each
language shows no untranslated text; the language is chosen as documented; times are shown in
the user's zone (Almaty by default); templates render outside a request (for e-mails)."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from nanny import PROJECT_ROOT, formats, i18n
from nanny.catalogs import CATALOG_DIR, catalog_path
from nanny.keys import I18N, POOL
from tests.factories import make_admin, make_owner, make_sitter
from tests.page_helpers import form_csrf, hidden_csrf, sign_in
from tests.rows import insert_booking

TRANSLATED = ("ru", "kk")
# Latin text a Russian or Kazakh page may show: the brand, UTC, the English language's own name
# in the switcher, e-mail addresses (examples and users' own) and placeholders.
ALLOWED_LATIN = re.compile(r"Nanny|UTC|English|Eng|[\w.+-]+@[\w-]+(\.[\w-]+)+|\{\w+\}|%\(\w+\)[sd]")
PLACEHOLDER = re.compile(r"\{\w+\}|%\(\w+\)[sd]")


def read_catalogs(directory: Path = CATALOG_DIR) -> dict:
    out = {}
    for locale in i18n.LOCALES:
        with catalog_path(locale, directory).open("rb") as file:
            out[locale] = read_po(file, locale=locale)
    return out


def extracted(root: Path) -> dict[tuple[str | None, str], str]:
    """(context, msgid) -> a file it comes from, for every string `pybabel extract` finds under
    `root` with root/babel.cfg, the same command as the README's."""
    with (root / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = {}
    for filename, _line, message, _comments, context in extract_from_dir(
        str(root), method_map, options_map
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault((context, msgid), filename)
    return found


def missing_translations(root: Path, catalogs: dict) -> list[str]:
    """Every string of `root`'s sources that a catalog lacks (ru and kk: or leaves untranslated
    or fuzzy; en may leave msgstr empty, the msgid being English)."""
    problems = []
    for (context, msgid), filename in sorted(extracted(root).items(), key=str):
        for locale, catalog in catalogs.items():
            message = catalog.get(msgid, context=context)
            if message is None:
                problems.append(f"{locale}: {msgid!r} ({filename}) is not in the catalog")
                continue
            if locale not in TRANSLATED:
                continue
            strings = message.string if message.pluralizable else (message.string,)
            if message.fuzzy or not all(strings):
                problems.append(f"{locale}: {msgid!r} ({filename}) is not translated")
            elif message.pluralizable and len(strings) != catalog.num_plurals:
                problems.append(f"{locale}: {msgid!r} needs {catalog.num_plurals} plural forms")
    return problems


def test_every_string_of_templates_scripts_and_pages_is_in_every_catalog():
    catalogs = read_catalogs()
    assert missing_translations(PROJECT_ROOT, catalogs) == []
    # And nothing the sources no longer use lingers (pybabel update --ignore-obsolete drops it).
    wanted = extracted(PROJECT_ROOT)
    for locale, catalog in catalogs.items():
        stale = [m.id for m in catalog if m.id and (m.context, _msgid(m)) not in wanted]
        assert stale == [], f"{locale}: entries no source uses: {stale}"


# Every call in the scripts, found by a plain regex: a call the extractor skips (one nested in
# another's arguments, say) would otherwise show English on every page.
SCRIPT_CALL = re.compile(
    r"\b(?:_|ngettext)\(\s*'((?:[^'\\]|\\.)*)'|\bpgettext\(\s*'((?:[^'\\]|\\.)*)',\s*'((?:[^'\\]|\\.)*)'"
)


def test_every_call_in_the_scripts_is_extracted():
    wanted = extracted(PROJECT_ROOT)
    calls = []
    for path in sorted((PROJECT_ROOT / "static" / "js").glob("*.js")):
        if path.name == "i18n.js":  # defines the calls; its comments show them
            continue
        for plain, context, contextual in SCRIPT_CALL.findall(path.read_text()):
            key = (context, contextual) if context else (None, plain)
            calls.append(key)
            assert key in wanted, f"{path.name}: {key} is not extracted"
    assert len(calls) > 150


def _msgid(message) -> str:
    return message.id[0] if message.pluralizable else message.id


def test_a_new_string_in_a_template_or_script_fails_the_check(tmp_path):
    shutil.copy(PROJECT_ROOT / "babel.cfg", tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "static" / "js").mkdir(parents=True)
    (tmp_path / "templates" / "new.html").write_text("<p>{{ _('Walking') }} {{ _('Fresh') }}</p>")
    (tmp_path / "static" / "js" / "new.js").write_text(
        "toast(_('Cancel'));\ntoast(`${ngettext('{n} kitten', '{n} kittens', n)}`);\n"
    )
    problems = missing_translations(tmp_path, read_catalogs())
    for locale in i18n.LOCALES:
        assert f"{locale}: 'Fresh' (templates/new.html) is not in the catalog" in problems
        assert f"{locale}: '{{n}} kitten' (static/js/new.js) is not in the catalog" in problems
    assert not [p for p in problems if "Walking" in p or "'Cancel'" in p]


@pytest.mark.parametrize("locale", TRANSLATED)
def test_translations_are_russian_and_kazakh_not_english_copies(locale):
    catalog = read_catalogs()[locale]
    cyrillic = re.compile(r"[а-яёәғқңөұүһі]", re.IGNORECASE)
    kazakh_letters = re.compile(r"[әғқңөұүһі]", re.IGNORECASE)
    kazakh_seen = 0
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if message.pluralizable else (message.id,)
        strings = message.string if message.pluralizable else (message.string,)
        for text in strings:
            rest = ALLOWED_LATIN.sub("", text)
            assert not re.search(r"[A-Za-z]", rest), f"{locale}: English left in {text!r}"
            if re.search(r"[A-Za-z]", ALLOWED_LATIN.sub("", ids[0])):
                assert cyrillic.search(text), f"{locale}: {text!r} is not translated"
            # The same placeholders, each kept (a translation may not drop or invent one).
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(ids[-1])), text
            kazakh_seen += bool(kazakh_letters.search(text))
    if locale == "kk":  # written with the Kazakh letters, not Russian spelling
        assert kazakh_seen > 100


def test_plural_forms_follow_babels_rules_for_each_language():
    catalogs = read_catalogs()
    for locale, catalog in catalogs.items():
        assert (catalog.num_plurals, catalog.plural_expr) == get_plural(locale)
    app = web.Application()
    i18n.setup(app)
    ru = i18n.localizer(app, "ru")
    years = [ru.ngettext("{n} year", "{n} years", n) for n in (1, 2, 5, 11, 12, 21, 22, 25, 111)]
    assert years == [
        "1 год", "2 года", "5 лет", "11 лет", "12 лет", "21 год", "22 года", "25 лет", "111 лет"
    ]  # fmt: skip
    kk = i18n.localizer(app, "kk")
    assert [kk.ngettext("{n} year", "{n} years", n) for n in (1, 5)] == ["1 жыл", "5 жыл"]
    en = i18n.localizer(app, "en")
    assert [en.ngettext("{n} year", "{n} years", n) for n in (1, 5)] == ["1 year", "5 years"]
    # The scripts' catalog carries the same rule and every form.
    body = app[I18N].catalogs["ru"].script_json.decode()
    assert get_plural("ru")[1] in body and '"{n} year":["{n} год","{n} года","{n} лет"]' in body


def test_money_in_each_language():
    assert formats.format_money(Decimal("2500"), "ru") == "2\xa0500\xa0₸"
    assert formats.format_money("2500.50", "ru") == "2\xa0500,50\xa0₸"
    assert formats.format_money(2500, "kk") == "2\xa0500\xa0₸"
    assert formats.format_money(1234567.8, "en") == "₸1,234,567.80"
    assert formats.format_money(0, "en") == "₸0"


def test_times_in_each_language_and_zone():
    late = datetime(2031, 5, 10, 23, 30, tzinfo=UTC)
    after = datetime(2031, 5, 11, 1, 0, tzinfo=UTC)
    assert formats.format_time(late, "ru").startswith("11 мая 2031")
    assert formats.format_time(late, "ru", form="time") == "04:30"
    assert formats.format_range(late, after, "en") == "May 11, 2031, 04:30 – 06:00"
    assert formats.format_range(late, after, "en", "Europe/London") == (
        "May 11, 2031, 00:30 – 02:00"
    )
    # Crossing midnight where the user lives shows both dates.
    assert formats.format_range(late, after, "en", "UTC") == (
        "May 10, 2031, 23:30 – May 11, 2031, 01:00"
    )
    assert formats.format_time(late, "kk", form="day").startswith("11 мам.")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "ru"),
        ("", "ru"),
        ("de-DE,de;q=0.9,fr;q=0.8", "ru"),
        ("en-US,en;q=0.9", "en"),
        ("kk-KZ", "kk"),
        ("en;q=0.5, kk;q=0.9, *;q=0.1", "kk"),
        ("kk;q=0, en", "en"),
        ("en;q=bad, ru;q=0.3", "ru"),
        ("*", "ru"),
    ],
)
def test_the_browsers_languages_in_order_of_preference(header, expected):
    assert i18n.negotiate(None, None, header) == expected


def test_saved_choice_then_cookie_then_browser():
    assert i18n.negotiate("kk", "en", "ru") == "kk"
    assert i18n.negotiate(None, "en", "kk") == "en"
    assert i18n.negotiate(None, "xx", "kk") == "kk"


# --- pages -------------------------------------------------------------------------------------


class PageText(HTMLParser):
    """The text a reader meets: text nodes (scripts and styles aside) and the attributes that
    are read out or shown (title, placeholder, aria-label, alt)."""

    def __init__(self):
        super().__init__()
        self.chunks: list[str] = []
        self.lang = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("title", "placeholder", "aria-label", "alt") and value and value.strip():
                self.chunks.append(value.strip())

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.chunks.append(" ".join(data.split()))


def page_text(html: str) -> PageText:
    parser = PageText()
    parser.feed(html)
    return parser


# The people of these pages have Kazakh names, so any Latin text left is the page's own.
OWNER_NAME, SITTER_NAME, PET_NAME = "Айгерим Сапарова", "Данияр Ахметов", "Барсик"


@pytest.fixture
async def people(client):
    owner = await make_owner(client, full_name=OWNER_NAME)
    sitter = await make_sitter(
        client,
        full_name=SITTER_NAME,
        location="Алматы",
        certificates="Первая помощь",
        preferences="собаки",
    )
    pending = await make_sitter(
        client,
        status="pending",
        full_name="Ерлан Сейтов",
        location="Астана",
        certificates="",
        preferences="кошки",
    )
    admin = await make_admin(client)
    async with client.app[POOL].acquire() as conn:
        await conn.execute("UPDATE users SET full_name = 'Асель' WHERE user_id = $1", admin.user_id)
    booking_id = await insert_booking(client, owner.user_id, sitter.user_id, pet_name=PET_NAME)
    return {
        "owner": owner,
        "sitter": sitter,
        "pending": pending,
        "admin": admin,
        "booking": booking_id,
    }


async def _pages_of(client, people, locale: str) -> dict[str, tuple]:
    """(status, Content-Language, html) of each page, seen in `locale` chosen by the cookie."""
    seen = {}

    async def visit(name, account, path, method="get", data=None):
        client.session.cookie_jar.clear()
        client.session.cookie_jar.update_cookies({i18n.LANG_COOKIE: locale})
        if account is not None:
            await sign_in(client, account.email)
        if data is not None:
            data = data | {"csrf_token": await form_csrf(client, path)}
        resp = await getattr(client, method)(path, data=data, allow_redirects=False)
        seen[name] = (resp.status, resp.headers.get("Content-Language"), await resp.text())

    await visit("home", None, "/")
    await visit("login", None, "/login")
    await visit("register", None, "/register?role=sitter")
    bad = {"role": "sitter", "full_name": "", "email": "x", "phone": "12", "password": "s"}
    await visit("register errors", None, "/register", "post", bad)
    await visit("login errors", None, "/login", "post", {"email": "", "password": ""})
    await visit("owner", people["owner"], "/owner")
    await visit("sitter", people["sitter"], "/sitter")
    await visit("pending sitter", people["pending"], "/sitter")
    await visit("admin", people["admin"], "/admin")
    await visit("chat", people["owner"], f"/bookings/{people['booking']}/chat")
    await visit("not for you", people["owner"], "/admin")
    await visit("no chat", people["sitter"], "/bookings/999999/chat")
    return seen


@pytest.mark.parametrize("locale", i18n.LOCALES)
async def test_every_page_in_each_language_has_no_untranslated_text(client, people, locale):
    catalogs = read_catalogs()
    # The English wording of every string that has a translation in this language.
    english = set()
    for message in catalogs["ru"]:
        if message.id:
            english.update(message.id if message.pluralizable else (message.id,))
    pages = await _pages_of(client, people, locale)
    assert {name: status for name, (status, _, _) in pages.items()} == {
        "home": 200, "login": 200, "register": 200, "register errors": 400,
        "login errors": 400, "owner": 200, "sitter": 200, "pending sitter": 200, "admin": 200,
        "chat": 200, "not for you": 403, "no chat": 404,
    }  # fmt: skip
    for name, (_, content_language, html) in pages.items():
        text = page_text(html)
        assert content_language == locale and text.lang == locale, name
        if locale == "en":
            continue
        for chunk in text.chunks:
            assert chunk not in english, f"{locale} {name}: {chunk!r} is not translated"
            rest = ALLOWED_LATIN.sub("", chunk)
            assert not re.search(r"[A-Za-z]{2,}", rest), f"{locale} {name}: {chunk!r}"


async def test_a_saved_language_wins_over_the_cookie_and_the_browser(client):
    owner = await make_owner(client)
    resp = await client.put("/api/auth/me", json={"locale": "kk"}, headers=owner.headers)
    assert resp.status == 200 and (await resp.json())["locale"] == "kk"
    client.session.cookie_jar.update_cookies({i18n.LANG_COOKIE: "ru"})
    await sign_in(client, owner.email)

    async def page_language() -> tuple[str, str]:
        resp = await client.get("/owner", headers={"Accept-Language": "en-US,en;q=0.9"})
        assert resp.status == 200
        return resp.headers["Content-Language"], page_text(await resp.text()).lang

    assert await page_language() == ("kk", "kk")
    # Cleared: the cookie decides; without it, the browser.
    resp = await client.put("/api/auth/me", json={"locale": None}, headers=owner.headers)
    assert (await resp.json())["locale"] is None
    assert await page_language() == ("ru", "ru")
    client.session.cookie_jar.clear(lambda cookie: cookie.key == i18n.LANG_COOKIE)
    assert await page_language() == ("en", "en")


async def test_the_switcher_sets_the_cookie_and_saves_a_signed_in_users_choice(client):
    resp = await client.post(
        "/language", data={"locale": "kk", "next": "/register"}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/register"
    assert (
        client.session.cookie_jar.filter_cookies(client.make_url("/"))["nanny_lang"].value == "kk"
    )
    assert page_text(await (await client.get("/login")).text()).lang == "kk"
    for bad_next in ("//evil.example/", "https://evil.example/"):
        resp = await client.post(
            "/language", data={"locale": "en", "next": bad_next}, allow_redirects=False
        )
        assert resp.headers["Location"] == "/"
    resp = await client.post("/language", data={"locale": "de"}, allow_redirects=False)
    assert resp.status == 400 and resp.headers["Content-Language"] == "en"

    owner = await make_owner(client)
    await sign_in(client, owner.email)
    page = await (await client.get("/owner")).text()
    # Signed in, the form must carry the session's CSRF token; without it nothing is saved.
    resp = await client.post("/language", data={"locale": "ru"}, allow_redirects=False)
    assert resp.status == 403
    me = await (await client.get("/api/auth/me", headers=owner.headers)).json()
    assert me["locale"] is None
    form = {"locale": "ru", "next": "/owner", "csrf_token": hidden_csrf(page)}
    resp = await client.post("/language", data=form, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/owner"
    me = await (await client.get("/api/auth/me", headers=owner.headers)).json()
    assert me["locale"] == "ru"


async def test_registering_through_the_page_keeps_the_pages_language(client):
    client.session.cookie_jar.update_cookies({i18n.LANG_COOKIE: "kk"})
    token = await form_csrf(client, "/register")
    body = {
        "role": "owner",
        "csrf_token": token,
        "full_name": "Әлия",
        "email": "aliya@example.kz",
        "phone": "8 (701) 765-43-21",
        "password": "correct-horse-9",
    }
    resp = await client.post("/register", data=body, allow_redirects=False)
    assert resp.status == 303
    async with client.app[POOL].acquire() as conn:
        row = await conn.fetchrow("SELECT locale, phone FROM users WHERE email = $1", body["email"])
    assert tuple(row) == ("kk", "+77017654321")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"locale": "de"}, "locale"),
        ({"locale": 1}, "locale"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"time_zone": "Asia/Almaty", "role": "admin"}, "role"),
    ],
)
async def test_bad_preferences_are_refused_and_change_nothing(client, body, field):
    owner = await make_owner(client)
    resp = await client.put("/api/auth/me", json=body, headers=owner.headers)
    assert resp.status == 400
    data = await resp.json()
    assert data["code"] == "validation_error" and data["details"]["field"] == field
    me = await (await client.get("/api/auth/me", headers=owner.headers)).json()
    assert (me["locale"], me["time_zone"], me["role"]) == (None, None, "owner")


async def test_every_iana_zone_can_be_saved(client):
    owner = await make_owner(client)
    resp = await client.put(
        "/api/auth/me", json={"time_zone": "Europe/London"}, headers=owner.headers
    )
    me = await resp.json()
    assert resp.status == 200 and me["time_zone"] == "Europe/London" and me["locale"] is None
    # The column's own check admits every zone the application accepts.
    zones = [(zone, owner.user_id) for zone in sorted(formats.time_zone_names())]
    async with client.app[POOL].acquire() as conn:
        await conn.executemany("UPDATE users SET time_zone = $1 WHERE user_id = $2", zones)
    resp = await client.put("/api/auth/me", json={"time_zone": None}, headers=owner.headers)
    assert (await resp.json())["time_zone"] is None


async def test_a_booking_at_2330_utc_shows_the_next_day_at_0430_in_almaty(client):
    owner = await make_owner(client, full_name=OWNER_NAME)
    sitter = await make_sitter(client, full_name=SITTER_NAME)
    start = datetime(2031, 5, 10, 23, 30, tzinfo=UTC)
    end = datetime(2031, 5, 11, 1, 0, tzinfo=UTC)
    booking_id = await insert_booking(
        client, owner.user_id, sitter.user_id, pet_name=PET_NAME, start=start, end=end
    )
    await sign_in(client, owner.email)

    async def when(locale: str) -> str:
        client.session.cookie_jar.update_cookies({i18n.LANG_COOKIE: locale})
        html = await (await client.get(f"/bookings/{booking_id}/chat")).text()
        match = re.search(r'id="booking-when">([^<]+)</time>', html)
        assert match, html
        return match.group(1)

    ru = await when("ru")
    assert ru.startswith("11 мая 2031") and ru.endswith(", 04:30 – 06:00")
    kk = await when("kk")
    assert kk.startswith("2031") and "11 мам." in kk and kk.endswith(", 04:30 – 06:00")
    assert await when("en") == "May 11, 2031, 04:30 – 06:00"
    # A user who chose another zone sees it there.
    await client.put("/api/auth/me", json={"time_zone": "Europe/London"}, headers=owner.headers)
    assert await when("en") == "May 11, 2031, 00:30 – 02:00"


# --- outside a request -----------------------------------------------------------------------


def test_templates_render_in_a_given_language_and_zone_outside_a_request(tmp_path):
    (tmp_path / "emails").mkdir()
    (tmp_path / "emails" / "booked.txt").write_text(
        "{{ _('Hello, %(name)s', name=name) }}\n"
        "{{ _('Booking') }}: {{ price | money }}, {{ start | time_range(end) }}\n"
    )
    (tmp_path / "emails" / "booked.html").write_text("<p>{{ name }}</p>")
    app = web.Application()
    i18n.setup(app, template_dir=tmp_path)
    start = datetime(2031, 5, 10, 23, 30, tzinfo=UTC)
    end = datetime(2031, 5, 11, 1, 0, tzinfo=UTC)
    context = {"name": "Tom & <Jerry>", "price": Decimal("8750.00"), "start": start, "end": end}

    ru = i18n.render(app, "emails/booked.txt", i18n.localizer(app, "ru"), context)
    assert ru.splitlines()[0] == "Здравствуйте, Tom & <Jerry>"  # plain text: not escaped
    assert ru.splitlines()[1].startswith("Бронирование: 8\xa0750\xa0₸, 11 мая 2031")
    kk = i18n.render(app, "emails/booked.txt", i18n.localizer(app, "kk", "Europe/London"), context)
    assert kk.splitlines()[1].startswith("Брондау: 8\xa0750\xa0₸, 2031") and "00:30 – 02:00" in kk
    # Unknown language or zone: the defaults, never an error in a background job.
    en = i18n.localizer(app, "xx", "Nowhere/Land")
    assert (en.locale, en.time_zone) == ("ru", "Asia/Almaty")
    html = i18n.render(app, "emails/booked.html", i18n.localizer(app, "en"), context)
    assert html == "<p>Tom &amp; &lt;Jerry&gt;</p>"
    loc = i18n.localizer(app, "kk")
    assert loc.gettext("Hello, %(name)s") == "Сәлеметсіз бе, %(name)s"
    assert loc.money(2500) == "2\xa0500\xa0₸" and loc.time(start, "time") == "04:30"


async def test_the_scripts_catalogs_are_served_cacheable_by_version(client):
    catalogs = client.app[I18N].catalogs
    for locale in i18n.LOCALES:
        version = catalogs[locale].version
        resp = await client.get(f"/i18n/{locale}.json?v={version}")
        assert resp.status == 200 and "immutable" in resp.headers["Cache-Control"]
        body = await resp.json()
        assert body["locale"] == locale and body["formats"]["patterns"]["time"] == "HH:mm"
    stale = await client.get("/i18n/kk.json?v=old")
    assert stale.status == 200 and stale.headers["Cache-Control"] == "no-cache"
    assert (await client.get("/i18n/de.json")).status == 404
    # The catalog of a language translates, and keeps the context of a contextual message.
    kk = (await (await client.get("/i18n/kk.json")).json())["messages"]
    assert kk["Walking"] == "Серуендету" and kk["sitter status\u0004Pending"] == "Тексерілуде"
