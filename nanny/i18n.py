"""The languages the pages (and the e-mails to come) speak: Russian (the default), Kazakh and
English, from the gettext catalogs in locale/ (edited as .po files, compiled here in memory at
start-up, so no generated file is kept in the repo).

`localizer(app, locale, time_zone)` gives the translations and formats of one language and zone,
and `render(app, template, loc, context)` renders a template with them: a page handler and an
e-mail sender use the same two calls. Each language has its own Jinja environment, with the i18n
extension wired to that language's catalog, and the filters `money`, `time`, `time_range` and
`phone`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from babel.support import Translations

from nanny import PROJECT_ROOT, formats, phones
from nanny.catalogs import (
    CATALOG_DIR,
    DEFAULT_LOCALE,
    LOCALES,
    Catalog,
    I18n,
    read_catalog,
)
from nanny.keys import I18N

# Each language is offered in its own words, so it can be found by someone who reads only it.
LANGUAGE_NAMES = {"ru": "Русский", "kk": "Қазақша", "en": "English"}
LANGUAGE_SHORT = {"ru": "Рус", "kk": "Қаз", "en": "Eng"}
LANG_COOKIE = "nanny_lang"
TEMPLATE_DIR = PROJECT_ROOT / "templates"


def N_(message: str) -> str:
    """Marks a string for the catalogs where it is defined; it is translated where it is shown."""
    return message


@dataclass(frozen=True, slots=True)
class Localizer:
    """One language and time zone: translations, times and money."""

    locale: str
    time_zone: str
    translations: Translations

    def gettext(self, message: str, **params: Any) -> str:
        text = self.translations.gettext(message)
        return text.format(**params) if params else text

    def ngettext(self, singular: str, plural: str, n: int, **params: Any) -> str:
        return self.translations.ngettext(singular, plural, n).format(n=n, **params)

    def money(self, amount: Decimal | float | int | str) -> str:
        return formats.format_money(amount, self.locale)

    def time(self, value: datetime, form: str = "datetime") -> str:
        return formats.format_time(value, self.locale, self.time_zone, form)

    def time_range(self, start: datetime, end: datetime) -> str:
        return formats.format_range(start, end, self.locale, self.time_zone)


def localizer(app: web.Application, locale: str | None, time_zone: str | None = None):
    """The Localizer of `locale` (the default when None or unknown) and `time_zone` (Almaty when
    None), for a page or anything sent outside a request, such as an e-mail."""
    code = locale if locale in LOCALES else DEFAULT_LOCALE
    zone = time_zone if time_zone and formats.is_time_zone(time_zone) else None
    return Localizer(code, zone or formats.DEFAULT_TIME_ZONE, app[I18N].catalogs[code].translations)


def render(app: web.Application, template: str, loc: Localizer, context: dict[str, Any]) -> str:
    """`template` rendered in `loc`'s language and zone (HTML templates autoescaped, others not)."""
    env = app[I18N].environments[loc.locale]
    base = {"locale": loc.locale, "time_zone": loc.time_zone, "loc": loc}
    return env.get_template(template).render(base | context)


def accepted_languages(header: str | None) -> list[str]:
    """The primary language tags of an Accept-Language header, most wanted first."""
    ranked = []
    for position, item in enumerate((header or "").split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary and primary != "*" and quality > 0:
            ranked.append((-quality, position, primary))
    return [primary for _, _, primary in sorted(ranked)]


def negotiate(saved: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The user's saved choice, else the language cookie, else the browser's, else Russian."""
    for choice in (saved, cookie):
        if choice in LOCALES:
            return choice
    for primary in accepted_languages(accept_language):
        if primary in LOCALES:
            return primary
    return DEFAULT_LOCALE


def _environment(app: web.Application, catalog: Catalog, loader) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(("html",), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    # Whitespace inside {% trans %} blocks is collapsed, as the extraction command does too.
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(catalog.translations, newstyle=True)
    env.globals.update(aiohttp_jinja2.GLOBAL_HELPERS)
    env.globals.update(app=app, locale=catalog.locale, time_zone=formats.DEFAULT_TIME_ZONE)

    @jinja2.pass_context
    def time(context, value: datetime, form: str = "datetime") -> str:
        return formats.format_time(value, catalog.locale, context["time_zone"], form)

    @jinja2.pass_context
    def time_range(context, start: datetime, end: datetime) -> str:
        return formats.format_range(start, end, catalog.locale, context["time_zone"])

    env.filters.update(
        money=lambda amount: formats.format_money(amount, catalog.locale),
        time=time,
        time_range=time_range,
        phone=phones.display_phone,
    )
    return env


def setup(
    app: web.Application, catalog_dir: Path = CATALOG_DIR, template_dir: Path = TEMPLATE_DIR
) -> None:
    """Compile the catalogs and make one template environment per language."""
    catalogs = {locale: read_catalog(locale, catalog_dir) for locale in LOCALES}
    loader = jinja2.FileSystemLoader(template_dir)
    environments = {
        locale: _environment(app, catalog, loader) for locale, catalog in catalogs.items()
    }
    app[I18N] = I18n(catalogs, environments)
