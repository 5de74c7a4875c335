"""The PostgreSQL store's parts (several appliance nodes on one database): its
schema migrations so far. Not selectable by ``db`` until the store is whole."""
