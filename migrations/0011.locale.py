"""A user's language and time zone; phone numbers of existing users in E.164.

`locale` and `time_zone` NULL mean no choice saved: the language then follows the browser (else
Russian) and times are shown in Asia/Almaty. The zone is checked against the IANA database by the
application, which knows it; the column only checks its shape.

Phones: every stored number that reads as a valid mobile or fixed-line number (a Kazakh one when
it has no country code) is rewritten in E.164, as new ones are stored. A number that cannot be
read so is kept as it was: it is someone's contact detail, and a person can still read it. This
is Python (the same rules as the API, from nanny.phones), not SQL. Rolling back keeps the E.164
numbers: the original spellings are not kept, and E.164 is valid under the old rules too."""

import logging

from psycopg2.extras import execute_values

from nanny.phones import normalise_phone

log = logging.getLogger("nanny.migrate")
BATCH = 5000

steps = [
    step(  # noqa: F821 - yoyo provides step()
        """
        ALTER TABLE users
            ADD COLUMN locale text CHECK (locale IN ('ru', 'kk', 'en')),
            ADD COLUMN time_zone text CHECK (time_zone ~ '^[A-Za-z][A-Za-z0-9_+/-]{0,63}$')
        """,
        "ALTER TABLE users DROP COLUMN time_zone, DROP COLUMN locale",
    ),
]


def _flush(cursor, changes: list[tuple[int, str]]) -> None:
    execute_values(
        cursor,
        "UPDATE users SET phone = v.phone FROM (VALUES %s) AS v (user_id, phone)"
        " WHERE users.user_id = v.user_id",
        changes,
    )
    changes.clear()


def normalise_existing_phones(conn) -> None:
    cursor = conn.cursor()
    changes: list[tuple[int, str]] = []
    changed = unreadable = 0
    last_id = 0
    while True:  # in pages by id, so any number of users fits in memory
        cursor.execute(
            "SELECT user_id, phone FROM users WHERE phone IS NOT NULL AND user_id > %s"
            " ORDER BY user_id LIMIT %s",
            (last_id, BATCH),
        )
        rows = cursor.fetchall()
        if not rows:
            break
        last_id = rows[-1][0]
        for user_id, phone in rows:
            e164 = normalise_phone(phone)
            if e164 is None:
                unreadable += 1
            elif e164 != phone:
                changes.append((user_id, e164))
        changed += len(changes)
        if changes:
            _flush(cursor, changes)
    if changed or unreadable:
        log.info("phones: %d rewritten in E.164, %d kept as they were", changed, unreadable)


steps.append(step(normalise_existing_phones, lambda conn: None))  # noqa: F821
