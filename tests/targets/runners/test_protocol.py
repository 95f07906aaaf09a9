import pytest

from targets.errors import SpeedproofError
from targets.runners.protocol import MeasurementProtocol


def test_defaults_follow_the_documented_protocol():
    protocol = MeasurementProtocol()
    assert protocol.warmup_min_iterations == 10
    assert protocol.warmup_min_duration_s == 0.5
    assert protocol.min_iterations == 50
    assert protocol.min_duration_s == 2.0
    assert protocol.cell_timeout_s() > protocol.max_duration_s


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_iterations": 0}, "--min-iterations"),
        ({"min_duration_s": 10, "max_duration_s": 5}, "exceeds --max-duration-s"),
        ({"max_duration_s": 0}, "--max-duration-s"),
        ({"min_duration_s": -1}, "--min-duration-s"),
    ],
)
def test_invalid_settings_are_named(kwargs, message):
    with pytest.raises(SpeedproofError, match=message):
        MeasurementProtocol(**kwargs)


def test_round_trips_through_a_dict():
    protocol = MeasurementProtocol(min_iterations=3)
    assert MeasurementProtocol.from_dict(protocol.as_dict()) == protocol
