"""Gateway simulators for tests, on free ports, with fast timings.

Load as a plugin (conftest: `pytest_plugins = ["tests.simulator_fixtures"]`) or import
the fixtures into a test module.
"""

import pytest

from gallery.simulator import GatewaySimulator, SimulatorConfig

SIMULATOR_TEST_KEY = "test-subscription-key-4f9c2a7e1d"

FAST_TIMINGS = {"queue_seconds": 0.2, "processing_seconds": 0.4, "retry_after_seconds": 1}


@pytest.fixture
def make_simulator():
    """make_simulator(**config) -> a started GatewaySimulator; all are stopped afterwards."""
    started = []

    def make(**config):
        config = {"api_key": SIMULATOR_TEST_KEY, **FAST_TIMINGS, **config}
        simulator = GatewaySimulator(SimulatorConfig(**config))
        simulator.start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def simulator(make_simulator):
    """A started simulator with fast timings and no faults; simulator.base_url is its URL."""
    return make_simulator()
