"""Notifications: what each one says (`content`), its e-mail and the one-click
unsubscribe (`mail`), and the background work of every process (`sender`): sending the outbox,
writing unread-messages digests and pushing the live `notification` frame."""
