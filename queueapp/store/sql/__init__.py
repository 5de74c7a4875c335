"""Every statement that changes a job, written once for both stores.

``jobs.py`` and ``dependencies.py`` build statements (text and parameters) for a
dialect (``dialect.py``); ``plan.py`` is the form in which a transition of several
statements is written (a generator that yields each statement and receives its
rows), which each store runs on its own connection: SQLite's single writer
(store/sqlite/run.py), PostgreSQL's ordered writer (store/postgres/run.py).
"""
