"""Gateway simulators for tests, on free ports, with fast timings.

Load as a plugin (conftest: `pytest_plugins = ["tests.simulator_fixtures"]`) or import
the fixtures into a test module.
"""

import pytest

from gallery.simulator import GatewaySimulator, SimulatorConfig

SIMULATOR_TEST_KEY = "test-subscription-key-4f9c2a7e1d"

# The contract's example request body (../shared/gpt-image-1.5-api.md), as documented.
DOCUMENTED_BODY = {
    "prompt": "create a realistic image taken with iphone at these coordinates "
    "41°43′32″N 49°56′49″W 15 April 1912",
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "high",
    "num_images": 1,
    "output_format": "png",
}

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
