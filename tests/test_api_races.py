"""The API's limits hold over real HTTP with requests racing from several processes: the
Dockerfile's gunicorn (three worker processes), the Procfile's worker and a gateway stand-in
that counts every image it is asked for (tests/test_spend_races.py's site), each request made
by the official `openai` package in a process of its own, all released at once.

Marked `postgres`: `make test` runs them again on a real PostgreSQL server.
"""

import pytest

from gallery.models import ApiToken, Generation, Quota
from tests.races import race
from tests.test_spend_races import (  # noqa: F401 (fixtures)
    gateway,
    images_sent,
    person,
    site,
    wait_until_settled,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


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
