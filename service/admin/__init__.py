"""The admin API: the history of every object over HTTP (``/admin/api``), behind a token;
and the dashboard that shows it in a browser (``/admin/``), reading that API.

A front end like the gateway: it asks the history service (and the application, for a
namespace's unique key) through their ports, and knows no store, no runtime and no SQL.
"""
