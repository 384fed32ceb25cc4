"""The task graph: planning, updates, removal, queries and the rules every write obeys."""
