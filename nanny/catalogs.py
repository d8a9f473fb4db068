"""The gettext catalogs of locale/ (edited as .po files), compiled in memory: what the
translation of pages, scripts and e-mails reads (nanny.i18n). Kept apart from nanny.i18n so that
nanny.keys can name the type it holds without a cycle."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

from nanny import PROJECT_ROOT, formats

LOCALES = ("ru", "kk", "en")
DEFAULT_LOCALE = "ru"
CATALOG_DIR = PROJECT_ROOT / "locale"
DOMAIN = "messages"


@dataclass(frozen=True, eq=False)
class Catalog:
    locale: str
    translations: Translations
    messages: dict[str, str | list[str]]  # the translated ones, keyed as gettext keys them
    plural_forms: str

    # The scripts' catalog holds the language's formats, read from its CLDR data: some 2 MiB a
    # language once Babel has loaded them (7 MiB for the three, with the root locale's), so it
    # is made when a page first asks for it, not when the catalog is compiled.
    @functools.cached_property
    def script_json(self) -> bytes:
        """The scripts' catalog: messages, plural rule, formats."""
        body = {
            "locale": self.locale,
            "plural_forms": self.plural_forms,
            "messages": self.messages,
            "formats": formats.script_formats(self.locale),
        }
        return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()

    @functools.cached_property
    def version(self) -> str:
        """A hash of script_json, for its URL."""
        return hashlib.sha256(self.script_json).hexdigest()[:16]


def catalog_path(locale: str, directory: Path = CATALOG_DIR) -> Path:
    return directory / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(locale: str, directory: Path = CATALOG_DIR) -> Catalog:
    """The locale's catalog, compiled once per process while its file stays the same: every
    app a process makes (a test run makes hundreds) shares it."""
    path = catalog_path(locale, directory)
    stat = path.stat()
    return _compiled(locale, path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _compiled(locale: str, path: Path, mtime_ns: int, size: int) -> Catalog:
    with path.open("rb") as file:
        catalog = read_po(file, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as by pybabel compile
    compiled.seek(0)
    messages: dict[str, str | list[str]] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        msgid = message.id[0] if message.pluralizable else message.id
        # gettext's own key for a message with a context: the context, EOT, the message.
        key = f"{message.context}\x04{msgid}" if message.context else msgid
        if message.pluralizable:
            forms = list(message.string)
            if all(forms):
                messages[key] = forms
        elif message.string:
            messages[key] = message.string
    translations = Translations(compiled, domain=DOMAIN)
    return Catalog(locale, translations, messages, catalog.plural_forms)


@dataclass(frozen=True, slots=True)
class I18n:
    catalogs: dict[str, Catalog]
    environments: dict[str, jinja2.Environment]
