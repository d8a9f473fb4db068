"""The chat's use cases and rules, the same for both doors: REST (nanny/http/chat.py) and
WebSocket (nanny/ws/). Who may read and write (access.py), sending, marking read and reading the
history (messages.py), and storing messages in batches (batch.py). Live delivery is the fan-out's
job (nanny/ws/hub.py), which the use cases hand every committed event to."""
