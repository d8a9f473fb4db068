"""A user's language and time zone.

`locale` and `time_zone` NULL mean no choice saved: the language then follows the browser (else
Russian) and times are shown in Asia/Almaty. The zone is checked against the IANA database by the
application, which knows it; the column only checks its shape."""

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

