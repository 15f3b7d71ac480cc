"""What the studio's view holds (made by me, everything I can see, one gallery), and a
new card shown only in a view that holds it (issue 20); browser tests in
tests/test_browser_studio_team.py."""

import pytest

from gallery import tasks
from gallery.models import Gallery, Generation
from tests.image_factories import make_generation
from tests.test_generation_rules import VALID
from tests.test_studio import cards, htmx

pytestmark = pytest.mark.django_db

FORM = {**VALID, "quality": "low"}


@pytest.fixture
def not_sent(monkeypatch):
    monkeypatch.setattr(tasks, "enqueue_submit", lambda generation: None)


@pytest.fixture
def campaign(alice, bob):
    gallery = Gallery.objects.create(owner=alice, name="Campaign")
    gallery.add_member(bob, "viewer", added_by=alice)
    return gallery


def test_made_by_me_everything_and_one_gallery_hold_what_they_say(client, alice, bob, campaign):
    alices = make_generation(alice, gallery=campaign, prompt="alice's tram")
    bobs = make_generation(bob, prompt="bob's own kite")
    Gallery.objects.create(owner=alice, name="Private")
    hidden = make_generation(alice, gallery=Gallery.objects.get(name="Private"))
    client.force_login(bob)

    mine = client.get("/")
    everything = client.get("/?gallery=all")
    one = client.get(f"/?gallery={campaign.pk}")

    assert cards(mine) == [str(bobs.pk)]
    assert sorted(cards(everything)) == sorted([str(alices.pk), str(bobs.pk)])
    assert str(hidden.pk) not in cards(everything)
    assert cards(one) == [str(alices.pk)]
    assert '<h2 id="gallery-title">Made by me</h2>' in mine.content.decode()
    assert '<h2 id="gallery-title">Everything I can see</h2>' in everything.content.decode()
    assert '<option value="all" selected>Everything I can see</option>' in everything.text


def test_the_gallery_shown_is_the_one_the_form_follows_only_if_one_may_add_to_it(
    client, alice, bob, campaign
):
    client.force_login(alice)
    assert f'data-generate-into="{campaign.pk}"' in client.get(f"/?gallery={campaign.pk}").text
    client.force_login(bob)  # a viewer: new images can't go there
    assert 'data-generate-into=""' in client.get(f"/?gallery={campaign.pk}").text


def test_a_new_card_comes_back_only_for_a_view_that_holds_it(
    alice_client, alice, campaign, not_sent
):
    in_campaign = {**FORM, "gallery": campaign.pk, "view": f"gallery={campaign.pk}"}
    elsewhere = {**FORM, "view": f"gallery={campaign.pk}"}  # to My images, seen in Campaign

    shown = alice_client.post("/generate/", in_campaign, **htmx("generate-form")).text
    hidden = alice_client.post("/generate/", elsewhere, **htmx("generate-form")).text

    first, second = Generation.objects.order_by("pk")
    assert 'hx-swap-oob="afterbegin:#generation-grid"' in shown
    assert f'id="generation-{first.pk}"' in shown and "See it" in shown
    assert 'hx-swap-oob="afterbegin:#generation-grid"' not in hidden
    assert f'id="generation-{second.pk}"' not in hidden
    assert "Sent to “My images”</strong>, which this view doesn’t show." in hidden
    assert f'href="/?gallery={second.gallery_id}"' in hidden


def test_a_view_of_a_gallery_one_may_not_see_holds_no_new_card(
    client, alice, bob, campaign, not_sent
):
    private = Gallery.objects.create(owner=alice, name="Private")
    client.force_login(bob)
    html = client.post(
        "/generate/", {**FORM, "view": f"gallery={private.pk}"}, **htmx("generate-form")
    ).text
    assert "afterbegin:#generation-grid" not in html and "Private" not in html


def test_everything_i_can_see_gets_a_teammates_new_card_live(client, alice, bob, campaign):
    client.force_login(bob)
    page = client.get("/?gallery=all").text
    assert "data-others-add" in page
    made = make_generation(alice, gallery=campaign, prompt="made while bob looks")
    response = client.get("/updates/?gallery=all&anchor=0", **htmx("live-updates"))
    assert f'id="generation-{made.pk}"' in response.text


def test_a_long_prompt_is_folded_on_its_card_and_whole_on_its_detail_page(alice_client, alice):
    prompt = "a harbour at dusk, " * 200 + "THE-END"
    made = make_generation(alice, prompt=prompt)

    studio = alice_client.get("/").text
    detail = alice_client.get(f"/images/{made.images.get().pk}/").text

    assert "THE-END" not in studio
    assert f"Full prompt · {len(prompt)} characters" in studio
    assert "THE-END" in detail and "Show the whole prompt" in detail
