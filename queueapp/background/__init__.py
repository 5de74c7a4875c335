"""Background services, each a small class handed what it needs (never the whole
service): a ``tick`` that does one round, and a ``run`` that repeats it.

``scheduler``: recurring schedules; ``recovery``: jobs whose worker is gone;
``monitor``: health and alerts."""
