"""A CI-sized crash campaign: 20 SIGKILLs of a real serve process under load, with
`queueapp check` after each kill and the self-audit under load and after each restart;
and shorter ones on the PostgreSQL store (a real server, tests/pg.py), one node and
three nodes of a cluster; and kills of a primary, its synchronous standby or both."""

import pytest
from crash_harness import run_campaign, run_standby_campaign


def test_twenty_kills_lose_nothing_acknowledged(tmp_path):
    ledger = run_campaign(tmp_path / "crash.db", kills=20, seed=20261127)
    assert ledger.kills == 20
    assert ledger.audits >= 40  # under load before each kill, and after each restart
    assert len(ledger.enqueued) > 200 and len(ledger.completed) > 50  # the campaign did real work
    assert ledger.violations == []


def test_ten_kills_on_postgresql_lose_nothing_acknowledged(postgres, tmp_path):
    ledger = run_campaign(postgres.create_database("campaign"), kills=10, seed=20261128, folder=tmp_path)
    assert ledger.kills == 10 and ledger.audits >= 20
    assert len(ledger.enqueued) > 100 and len(ledger.completed) > 20
    assert ledger.violations == []


def test_six_kills_of_nodes_of_a_cluster_lose_nothing_acknowledged(postgres, tmp_path):
    """Three nodes of a cluster under load through all of them, a random one killed
    and started again each round: the same invariants, every node's audit clean."""
    ledger = run_campaign(postgres.create_database("campaign_cluster"), kills=6, seed=20261129, folder=tmp_path,
                          nodes=3)
    assert ledger.kills == 6 and ledger.audits >= 36
    assert len(ledger.enqueued) > 100 and len(ledger.completed) > 20
    assert ledger.violations == []


@pytest.mark.timeout(600)  # bounded by its eight rounds; a busy machine takes longer than the default
def test_kills_of_a_primary_its_standby_or_both_lose_nothing_acknowledged(tmp_path):
    """A synchronous standby: a lost primary is rebuilt from the standby's copy alone
    (its own file and folder taken to be gone), and holds every acknowledged change."""
    ledger = run_standby_campaign(tmp_path, kills=8, seed=20261202)
    assert ledger.kills == 8 and ledger.audits >= 16
    assert len(ledger.enqueued) > 100 and len(ledger.completed) > 20
    assert ledger.violations == []
