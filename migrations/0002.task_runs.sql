-- When each background task last ran, by the database clock. Tasks that must run once per
-- interval across every process and host read and write this under an advisory lock
-- (see nanny/expiry.py), so processes that wake at the same moment run the task only once.
CREATE TABLE task_runs (
    task         text PRIMARY KEY,
    last_run_at  timestamptz NOT NULL
);
