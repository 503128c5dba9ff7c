"""The public-collection corpus through the real RulesAnalyzer: every alert diagnosed, no unsafe
proposal, the share categorised and the hand-labelled sample. Data: tests/corpus/README.md.

The held-out collection (giantswarm, round 2) was never used to tune the classifier or the
runbooks: its sample was labelled before the classifier ran on it and measured once. Its figures
are asserted separately, with the same safety bar. monitoring-mixins, held out in round 1, is a
tuning collection since round 2.
"""

from __future__ import annotations

import pytest

from tests.corpus.harness import HELD_OUT, TUNING, Figures, load_labels, load_rules, run


@pytest.fixture(scope="module")
def figures() -> dict[str, Figures]:
    by_collection, _ = run()
    return by_collection


def test_corpus_has_the_collections_and_the_sample() -> None:
    rules = load_rules()
    counts = {c: sum(r["collection"] == c for r in rules) for c in (*TUNING, HELD_OUT)}
    assert counts["awesome-prometheus-alerts"] == 1155
    assert counts["kube-prometheus"] >= 100 and counts["monitoring-mixins"] >= 500
    assert counts[HELD_OUT] >= 300
    labels = load_labels()
    assert sum(c != HELD_OUT for c, _ in labels) >= 100
    assert sum(c == HELD_OUT for c, _ in labels) >= 100
    names = {(r["collection"], r["alertname"]) for r in rules}
    assert set(labels) <= names, set(labels) - names


@pytest.mark.parametrize("collection", [*TUNING, HELD_OUT])
def test_every_alert_diagnosed_and_nothing_unsafe(figures: dict[str, Figures],
                                                 collection: str) -> None:
    f = figures[collection]
    assert f.diagnosed == f.alerts
    assert f.unsafe == []


@pytest.mark.parametrize("collection", TUNING)
def test_tuning_collections_meet_the_targets(figures: dict[str, Figures],
                                             collection: str) -> None:
    """Tuned on, so above the issue's 90%: floors just under the round-2 figures (96-99%)."""
    f = figures[collection]
    assert f.categorised / f.alerts >= 0.95
    assert f.labelled >= 50
    assert f.labelled_correct / f.labelled >= 0.95, f.wrong


def test_held_out_collection(figures: dict[str, Figures]) -> None:
    """Not tuned on. Measured once: 321/338 categorised (95.0%), 99/106 of the labelled sample
    correct (93.4%). The floors sit just under those figures, so any regression shows."""
    f = figures[HELD_OUT]
    assert f.categorised / f.alerts >= 0.94
    assert f.labelled >= 100
    assert f.labelled_correct / f.labelled >= 0.92, f.wrong


def test_stateless_down_alerts_get_a_restart(figures: dict[str, Figures]) -> None:
    """Alerts that say a stateless thing is down, about a running container Docker confirms,
    get a restart in a fair share of cases (the rest are about links, backends, nodes and
    other things a container restart does not reach)."""
    f = figures["awesome-prometheus-alerts"]
    assert f.down_restarted >= 20
