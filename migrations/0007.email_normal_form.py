"""E-mail addresses are stored in the normal form of nanny.emails (NFKC, case-folded, trimmed)
and kept unique as stored. The unique index was on lower(email), whose folding depends on the
server's locale and disagreed with the rate limits' key; existing rows are rewritten here, in
Python, because no SQL function folds case the same way on every server."""

from yoyo import step

from nanny.db.migrate import MigrationRefused
from nanny.emails import normalise_email

BATCH = 10_000


def normalise_stored_emails(conn) -> None:
    cursor = conn.cursor()
    owner_of: dict[str, int] = {}
    clashes: list[tuple[int, int]] = []
    changed: list[tuple[str, int]] = []
    last = 0
    while True:  # in batches: a million users are not read at once
        cursor.execute(
            "SELECT user_id, email FROM users WHERE email IS NOT NULL AND user_id > %s "
            "ORDER BY user_id LIMIT %s",
            (last, BATCH),
        )
        rows = cursor.fetchall()
        if not rows:
            break
        for user_id, email in rows:
            normal = normalise_email(email)
            if normal in owner_of:
                clashes.append((owner_of[normal], user_id))
            owner_of[normal] = user_id
            if normal != email:
                changed.append((normal, user_id))
        last = rows[-1][0]
    if clashes:
        pairs = ", ".join(f"{a} and {b}" for a, b in clashes[:10])
        raise MigrationRefused(
            f"users {pairs} have e-mail addresses that are the same once normalised; "
            "change or delete one of each pair, then migrate again"
        )
    cursor.execute("DROP INDEX users_email_lower_key")
    cursor.executemany("UPDATE users SET email = %s WHERE user_id = %s", changed)
    cursor.execute("CREATE UNIQUE INDEX users_email_key ON users (email) WHERE email IS NOT NULL")


def restore_lower_index(conn) -> None:
    # The addresses stay normalised: they are lower-case already.
    cursor = conn.cursor()
    cursor.execute("DROP INDEX users_email_key")
    cursor.execute(
        "CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email)) WHERE email IS NOT NULL"
    )


steps = [step(normalise_stored_emails, restore_lower_index)]
