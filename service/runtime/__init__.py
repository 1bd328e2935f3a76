"""Activations: mailboxes, the output gate, hibernation, wake by replay, ownership, alarms."""
