"""The admin API: the history of every object over HTTP (``/admin/api``), behind a token.

A front end like the gateway: it asks the history service (and the application, for a
namespace's unique key) through their ports, and knows no store, no runtime and no SQL.
"""
