"""The SQLite store's parts: one file in WAL mode, its single writer with group
commit, and what only SQLite does (ids drawn in the writer, bulk arrays read in C,
the integrity check). Mirrors store/postgres/ file for file where both have a part."""
