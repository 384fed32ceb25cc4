"""The supervisors' board (issue 16): read-only HTML pages over the same services the MCP tools use, kept
live by server-sent events. An edge of the app, like ``app.tools`` and ``app.http``."""
