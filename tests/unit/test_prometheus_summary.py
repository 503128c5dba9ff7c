"""Shapes of Prometheus answers: vectors and scalars are data, anything else is an error."""

from __future__ import annotations

import pytest

from sre_agent.domain.evidence import EvidenceStatus
from sre_agent.evidence.prometheus import summarise_instant


def test_vector_takes_the_max_value() -> None:
    status, data = summarise_instant("up", [
        {"metric": {"job": "a"}, "value": [1, "0"]}, {"metric": {"job": "b"}, "value": [1, "1"]}])
    assert status is EvidenceStatus.OK and data["value"] == 1.0
    assert data["series"][0]["metric"] == {"job": "b"}


def test_empty_vector_is_no_data_and_scalar_is_data() -> None:
    assert summarise_instant("up", [])[0] is EvidenceStatus.NO_DATA
    status, data = summarise_instant("1+1", [1700000000.0, "2"])
    assert status is EvidenceStatus.OK and data["value"] == 2.0


@pytest.mark.parametrize("garbage", ["garbage", {"a": 1}, [1, 2, 3], ["x", {"metric": {}}], 42])
def test_garbage_is_an_error_not_no_data(garbage: object) -> None:
    status, data = summarise_instant("up", garbage)
    assert status is EvidenceStatus.ERROR and "error" in data
