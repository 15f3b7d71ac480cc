"""Requests to the OpenAI-compatible endpoint hold a server thread each while their
generations are made (waiting on our database, never on the gateway): in the shipped web
server configuration (the Dockerfile's gunicorn with config/gunicorn.py) the rest of the
site keeps answering while they wait, and a process never lets more wait than its threads
allow (WAITING_REQUESTS_PER_PROCESS): the next one is told to come back, and nothing is
made for it. Real HTTP throughout: the openai package, gunicorn, the worker, a slow gateway
stand-in. Timings are the benchmark's (tests/benchmarks/bench_api.py), not asserted here."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from django.test import Client

from gallery.models import ApiToken, Generation
from gallery.simulator import GatewaySimulator, SimulatorConfig
from tests.pipeline_fixtures import database_url
from tests.simulator_fixtures import SIMULATOR_TEST_KEY
from tests.test_spend_races import running_site

pytestmark = pytest.mark.django_db(transaction=True)
# Long enough that every request is still waiting while the page is asked for.
QUEUE_SECONDS = 4.0


@pytest.fixture
def slow_gateway():
    simulator = GatewaySimulator(
        SimulatorConfig(
            api_key=SIMULATOR_TEST_KEY, queue_seconds=QUEUE_SECONDS, processing_seconds=0.3
        )
    )
    simulator.start()
    yield simulator
    simulator.stop()


def generate(url, token, prompt):
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=120)
    try:
        return len(client.images.generate(prompt=prompt, quality="low").data)
    except openai.APIStatusError as error:
        return error.status_code


def studio_page(url, user):
    client = Client()
    client.force_login(user)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    return httpx.get(f"{url}/", cookies=cookies, timeout=10)


def wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_eight_waiting_requests_leave_the_studio_answering_in_the_shipped_server(
    slow_gateway, tmp_path, alice
):
    token = ApiToken.objects.create(user=alice, name="Open WebUI").token
    # The Dockerfile's command and its WEB_CONCURRENCY (3), config/gunicorn.py's threads (64).
    shipped = running_site(slow_gateway, tmp_path, database_url(), WEB_THREADS=None)
    with shipped as site, ThreadPoolExecutor(8) as pool:
        waiting = [pool.submit(generate, site["url"], token, f"slow kite {n}") for n in range(8)]
        wait_for(lambda: Generation.objects.filter(owner=alice).count() == 8)
        pages = [studio_page(site["url"], alice) for _ in range(3)]
        still_waiting = sum(not request.done() for request in waiting)
        answers = [request.result(timeout=60) for request in waiting]

    assert [page.status_code for page in pages] == [200, 200, 200]
    assert "slow kite" in pages[-1].text  # the waiting requests' cards, on the page
    assert still_waiting == 8
    assert answers == [1] * 8


def test_a_process_lets_no_more_wait_than_its_threads_allow_and_makes_nothing_for_the_rest(
    slow_gateway, tmp_path, alice
):
    token = ApiToken.objects.create(user=alice, name="Open WebUI").token
    # One process of 8 threads: 4 may wait (WAITING_REQUESTS_PER_PROCESS), 4 serve pages.
    small = {"WEB_CONCURRENCY": "1", "WEB_THREADS": "8"}
    with (
        running_site(slow_gateway, tmp_path, database_url(), **small) as site,
        ThreadPoolExecutor(6) as pool,
    ):
        waiting = [pool.submit(generate, site["url"], token, f"kite {n}") for n in range(6)]
        wait_for(lambda: sum(request.done() for request in waiting) == 2)
        page = studio_page(site["url"], alice)
        answers = [request.result(timeout=60) for request in waiting]

    assert page.status_code == 200
    assert sorted(answers) == [1, 1, 1, 1, 429, 429]  # the two turned away at once
    assert Generation.objects.filter(owner=alice).count() == 4
