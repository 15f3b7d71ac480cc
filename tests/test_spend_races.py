"""Limits hold over real HTTP, whatever people do, with requests racing from several
processes: the Dockerfile's gunicorn (three worker processes) in front of the test database,
the Procfile's worker, and a gateway stand-in that counts every image it is asked for.

Each scenario is something a person can do in a browser (or a script can do at once, also
through the API with the official `openai` package): make and delete, post many at once,
cancel and retry in a loop, move between galleries, an operator retrying from admin, two
members hitting a gallery's budget together. In each, the
gateway receives no more images than the limit allows. Before the usage ledger, each let
more through (measured on the code of 2026-12-01: 9 images for a quota of 4 after deleting
two and posting eight at once; 7 for a quota of 2 by cancelling and retrying six times).

Marked `postgres`: `make test` runs them again on a real PostgreSQL server.
"""

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from gallery.models import ApiToken, Gallery, Generation, Quota, Role
from gallery.simulator import GatewaySimulator, SimulatorConfig
from tests.pipeline_fixtures import database_url
from tests.races import race
from tests.simulator_fixtures import SIMULATOR_TEST_KEY
from tests.test_deploy import dockerfile, free_port, wait_until_listening

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
S = Generation.Status
FORM = {
    "prompt": "a red kite over the dunes",
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "low",
    "num_images": "1",
    "output_format": "png",
}


@pytest.fixture(scope="module")
def gateway():
    simulator = GatewaySimulator(
        SimulatorConfig(api_key=SIMULATOR_TEST_KEY, queue_seconds=0.2, processing_seconds=0.3)
    )
    simulator.start()
    yield simulator
    simulator.stop()


def images_sent(gateway):
    """Every image the gateway was asked to make (the num_images of each accepted submit)."""
    return sum(
        body.get("num_images", 0)
        for body in gateway.received
        if isinstance(body, dict) and "prompt" in body
    )


@pytest.fixture(scope="module")
def site(gateway, tmp_path_factory, django_db_setup, django_db_blocker):
    """gunicorn as the Dockerfile runs it, and the Procfile's worker, on the test database."""
    with django_db_blocker.unblock():
        url = database_url()
    with running_site(gateway, tmp_path_factory.mktemp("races"), url) as running:
        yield running


@contextlib.contextmanager
def running_site(gateway, tmp, url, **env):
    """The Dockerfile's gunicorn and the Procfile's worker on the database at `url`, with
    the gateway stand-in `gateway`: {"url", "log", "worker"}. `env` overrides the
    environment (WEB_CONCURRENCY is 3 unless it says otherwise)."""
    from django.conf import settings

    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": settings.SECRET_KEY,  # sessions made here are valid there
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_COOKIES": "0",
        "DATABASE_URL": url,
        "DARKROOM_DATA_DIR": str(tmp / "data"),
        "MEDIA_ROOT": str(tmp / "media"),
        "STATIC_ROOT": str(tmp / "static"),
        "PIXAZO_API_KEY": SIMULATOR_TEST_KEY,
        "PIXAZO_BASE_URL": gateway.base_url,
        "WEB_CONCURRENCY": "3",
        "DOWNLOAD_ALLOW_PRIVATE_HOSTS": "1",  # the gateway stand-in's images are on loopback
        "Q_WORKERS": "2",
        "LOG_LEVEL": "WARNING",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **env,
    }
    env = {name: value for name, value in env.items() if value is not None}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
    subprocess.run(collect, cwd=ROOT, env=env, check=True, timeout=120)
    port = free_port()
    (cmd,) = dockerfile("CMD")
    command = [part.replace("0.0.0.0:8000", f"127.0.0.1:{port}") for part in json.loads(cmd)]
    log = tmp / "site.log"
    with log.open("w") as out:
        web = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_listening(port, web, log)
        yield {"url": f"http://127.0.0.1:{port}", "log": log, "worker": worker}
    finally:
        for process in (web, worker):
            process.send_signal(signal.SIGTERM)
        for process in (web, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def signed_in(site, user):
    """Cookies of a browser signed in as `user` (a session made here, in the shared
    database) and the CSRF token its pages carry."""
    client = Client()
    client.force_login(user)
    cookies = {"sessionid": client.cookies["sessionid"].value}
    with httpx.Client(base_url=site["url"], cookies=cookies, timeout=30) as browser:
        page = browser.get("/")
        assert page.status_code == 200, site["log"].read_text()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        cookies["csrftoken"] = browser.cookies["csrftoken"]
    return {"url": site["url"], "cookies": cookies, "token": token}


def post(visitor, path, data=None):
    """One POST as the browser sends it (a module-level function: it runs in racing
    processes). Returns the status code."""
    with httpx.Client(base_url=visitor["url"], cookies=visitor["cookies"], timeout=60) as browser:
        response = browser.post(
            path,
            data={**(data or {}), "csrfmiddlewaretoken": visitor["token"]},
            headers={"HX-Request": "true", "Referer": visitor["url"] + "/"},
        )
        return response.status_code


def at_once(visitors_and_data, path="/generate/"):
    """Each (visitor, data) posted from a process of its own, all released together."""
    return race(post, [(visitor, path, data) for visitor, data in visitors_and_data])


def wait_until_settled(site, timeout=60):
    """Until nothing is left for the worker to send or poll."""
    deadline = time.monotonic() + timeout
    while Generation.objects.unfinished().exists():
        assert site["worker"].poll() is None, site["log"].read_text()
        assert time.monotonic() < deadline, site["log"].read_text()
        time.sleep(0.1)


@pytest.fixture
def person():
    return get_user_model().objects.create_user("ada" + secrets.token_hex(3), password="x")


def sent_so_far(gateway, before):
    return images_sent(gateway) - before


def test_make_delete_then_post_many_at_once_never_passes_the_quota(site, gateway, person):
    Quota.objects.create(user=person, monthly_images=4)
    ada = signed_in(site, person)
    before = images_sent(gateway)
    at_once([(ada, FORM), (ada, FORM)])
    wait_until_settled(site)
    for generation in Generation.objects.filter(owner=person):
        assert generation.status == S.COMPLETED, generation.error
        assert post(ada, f"/generations/{generation.pk}/delete/") == 200

    at_once([(ada, FORM)] * 8)
    wait_until_settled(site)

    assert sent_so_far(gateway, before) == 4  # all four of the quota, and not one more
    # Deleting moved the first two to the trash: they still count, as they were paid for.
    assert Generation.objects.filter(owner=person).kept().count() == 2
    assert Generation.objects.filter(owner=person).trashed().count() == 2


def wait_until_sent(generation, timeout=30):
    """Until the worker has sent it (or it ended): cancelling it then can't unspend it."""
    deadline = time.monotonic() + timeout
    while generation.status in (S.PENDING, S.SUBMITTING):
        assert time.monotonic() < deadline, "the generation was never sent"
        time.sleep(0.02)
        generation.refresh_from_db()


def test_cancel_and_retry_in_a_loop_never_passes_the_quota(site, gateway, person):
    Quota.objects.create(user=person, monthly_images=2)
    ada = signed_in(site, person)
    before = images_sent(gateway)
    at_once([(ada, FORM)])
    generation = Generation.objects.get(owner=person)
    for _ in range(6):
        # Cancel it while the provider works on it (it was sent: that counts), then retry.
        wait_until_sent(generation)
        post(ada, f"/generations/{generation.pk}/cancel/")
        post(ada, f"/generations/{generation.pk}/retry/")
        generation.refresh_from_db()
    wait_until_settled(site)

    assert sent_so_far(gateway, before) == 2


def test_moving_and_posting_in_parallel_never_passes_the_quota(site, gateway, person):
    Quota.objects.create(user=person, monthly_images=3)
    elsewhere = Gallery.objects.create(owner=person, name="Elsewhere")
    ada = signed_in(site, person)
    before = images_sent(gateway)
    at_once([(ada, {**FORM, "num_images": "2"})])
    wait_until_settled(site)
    (first,) = Generation.objects.filter(owner=person)

    moves = [(ada, f"/generations/{first.pk}/move/", {"gallery": elsewhere.pk})] * 3
    posts = [(ada, "/generate/", {**FORM, "gallery": elsewhere.pk})] * 8
    race(post, moves + posts)
    wait_until_settled(site)

    assert sent_so_far(gateway, before) == 3


def test_an_operators_retry_from_admin_never_passes_the_quota(site, gateway, person):
    Quota.objects.create(user=person, monthly_images=1)
    ada = signed_in(site, person)
    operator = get_user_model().objects.create_superuser("op" + secrets.token_hex(3), "", "x")
    staff = signed_in(site, operator)
    before = images_sent(gateway)
    at_once([(ada, FORM)])
    wait_until_settled(site)
    done = Generation.objects.get(owner=person)
    Generation.objects.filter(pk=done.pk).update(status=S.CANCELLED)  # a finished one, again

    action = {"action": "retry_generations", "index": "0", "_selected_action": done.pk}
    assert post(staff, "/admin/gallery/generation/", action) in (200, 302)
    wait_until_settled(site)

    assert sent_so_far(gateway, before) == 1
    done.refresh_from_db()
    assert done.status == S.CANCELLED


def test_two_members_hitting_a_gallery_budget_at_once_never_pass_it(site, gateway, person):
    bob = get_user_model().objects.create_user("bob" + secrets.token_hex(3), password="x")
    # Two high-quality squares fit (2 × $0.133), a third does not.
    campaign = Gallery.objects.create(owner=person, name="Campaign", monthly_budget=Decimal("0.3"))
    campaign.add_member(bob, Role.CONTRIBUTOR, added_by=person)
    ada, bo = signed_in(site, person), signed_in(site, bob)
    high = {**FORM, "quality": "high", "gallery": campaign.pk}
    before = images_sent(gateway)

    answers = at_once([(ada, high)] * 3 + [(bo, high)] * 3)
    wait_until_settled(site)

    assert sent_so_far(gateway, before) == 2
    assert all(code == 200 for code in answers)  # the refused ones see why, on the form
    assert campaign.generations.count() == 2


# -- the API (issue 21): the openai package's requests meet the same one reservation ---------


def generate_as_openai_does(url, token, prompt):
    """One images.generate call (a module-level function: it runs in racing processes):
    the number of images it returned, or the status code it raised."""
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=120)
    try:
        return len(client.images.generate(prompt=prompt, quality="low", n=1).data)
    except openai.APIStatusError as error:
        return error.status_code


def token_of(user, **fields):
    token = ApiToken(user=user, name=fields.pop("name", "burst"), **fields)
    token.save()
    return token.token


def test_more_openai_requests_at_once_than_the_quota_allows_never_pass_it(site, gateway, person):
    Quota.objects.create(user=person, monthly_images=3)
    token = token_of(person)
    before = images_sent(gateway)

    answers = race(generate_as_openai_does, [(site["url"], token, f"kite {n}") for n in range(8)])
    wait_until_settled(site)

    assert images_sent(gateway) - before == 3  # the whole quota, and not one image more
    assert sorted(answers, key=str) == [1, 1, 1, 429, 429, 429, 429, 429]
    assert Generation.objects.filter(owner=person).count() == 3


def test_a_tokens_cap_and_its_owners_quota_hold_together_at_once(site, gateway, person):
    Quota.objects.create(user=person, monthly_images=5)
    capped, free = token_of(person, name="capped", monthly_images=2), token_of(person)
    before = images_sent(gateway)

    calls = [(site["url"], capped, "capped")] * 4 + [(site["url"], free, "free")] * 4
    answers = race(generate_as_openai_does, calls)
    wait_until_settled(site)

    # Six asked within the quota's five, two at most of them through the capped token.
    assert images_sent(gateway) - before == answers.count(1) == 5
    made = Generation.objects.filter(owner=person)
    assert made.count() == 5
    assert 1 <= made.filter(api_token__name="capped").count() <= 2
