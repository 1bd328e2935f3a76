"""Rerunning an object's recorded inbound work against the current code, in a scratch object
that reaches nobody, and reporting the first divergence from the log."""
