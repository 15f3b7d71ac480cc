"""The select bar (issue 20): one request acts on every selected card, in the same few
queries for 3 cards or 30, changing only what the caller may change and saying what it
left alone."""

import io
import re
import zipfile

import pytest

from gallery.models import Favourite, Gallery, Generation
from tests.conftest import make_user
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
S = Generation.Status


@pytest.fixture
def campaign(alice, bob):
    gallery = Gallery.objects.create(owner=alice, name="Campaign")
    gallery.add_member(bob, "contributor", added_by=alice)
    return gallery


def post(client, action, generations, **data):
    body = {"action": action, "g": [g.pk for g in generations], **data}
    return client.post("/generations/bulk/", body, **HTMX)


# Each: the session and the user; the selected generations (with the caller's rights); the
# one statement; the cards still in the view (and their images, when there are some). A
# move also checks the gallery, and the view's gallery filter when there is one.
# trash and move include recounting the galleries they touch (GalleryQuerySet.recount).
QUERIES = {"trash": 7, "move": 8, "favourite": 6, "unfavourite": 6}


@pytest.mark.parametrize("action", sorted(QUERIES))
def test_an_action_takes_the_same_queries_for_3_cards_as_for_30(
    alice, alice_client, django_assert_num_queries, action
):
    target = Gallery.objects.create(owner=alice, name="Elsewhere")
    few = [make_generation(alice, images=1) for _ in range(3)]
    many = [make_generation(alice, images=1) for _ in range(30)]
    data = {"gallery": target.pk, "next": "/"} if action == "move" else {"next": "/"}

    for selection in (few, many):
        with django_assert_num_queries(QUERIES[action]):
            response = post(alice_client, action, selection, **data)
        assert response.status_code == 200
    if action == "trash":
        assert Generation.objects.trashed().count() == 33
    elif action == "move":
        assert target.generations.count() == 33
    elif action == "favourite":
        assert Favourite.objects.filter(user=alice).count() == 33


def test_a_contributor_deletes_only_their_own_and_is_told_about_the_rest(
    alice, bob, campaign, client
):
    mine = [make_generation(bob, gallery=campaign) for _ in range(2)]
    hers = make_generation(alice, gallery=campaign)
    running = make_generation(bob, gallery=campaign, images=0, status=S.IN_PROGRESS)
    client.force_login(bob)

    response = post(client, "trash", [*mine, hers, running], next=f"/?gallery={campaign.pk}")

    html = response.content.decode()
    assert set(Generation.objects.trashed().values_list("pk", flat=True)) == {g.pk for g in mine}
    assert "Moved 2 generations to the trash." in html
    assert "1 left as it was: not yours to delete." in html
    assert "1 left as it was: still being made (cancel it first)." in html
    # The trashed cards leave the page; Undo restores exactly them.
    for generation in mine:
        assert f'<div id="generation-{generation.pk}" hx-swap-oob="delete">' in html
        assert f'name="g" value="{generation.pk}"' in html
    assert f'<div id="generation-{hers.pk}" hx-swap-oob="delete">' not in html


def test_a_viewer_is_refused_a_delete_and_nothing_changes(alice, campaign, client):
    carol = make_user("carol")
    campaign.add_member(carol, "viewer", added_by=alice)
    generation = make_generation(alice, gallery=campaign)
    client.force_login(carol)
    assert post(client, "trash", [generation]).status_code == 404
    assert not Generation.objects.trashed().exists()
    # Nor is Delete offered to them on the gallery's page.
    html = client.get(f"/?gallery={campaign.pk}").content.decode()
    assert 'value="trash"' not in html and 'value="favourite"' in html


def test_moving_out_of_the_viewed_gallery_takes_the_cards_off_its_page(
    alice, alice_client, campaign
):
    moved = [make_generation(alice) for _ in range(2)]
    stays = make_generation(alice)
    default = Gallery.default_for(alice)
    response = post(
        alice_client, "move", moved, gallery=campaign.pk, next=f"/?gallery={default.pk}"
    )
    html = response.content.decode()
    assert "Moved 2 generations to “Campaign”." in html
    assert {g.gallery_id for g in Generation.objects.filter(pk__in=[g.pk for g in moved])} == {
        campaign.pk
    }
    assert all(f'id="generation-{g.pk}" hx-swap-oob="delete"' in html for g in moved)
    assert f"generation-{stays.pk}" not in html
    # On "Your images" they stay, swapped in again as they are now.
    response = post(alice_client, "move", moved, gallery=default.pk, next="/")
    assert all(f'<article id="generation-{g.pk}"' in response.content.decode() for g in moved)


def test_favourites_are_added_and_removed_for_the_caller_alone(alice, bob, campaign, client):
    generations = [make_generation(alice, gallery=campaign) for _ in range(3)]
    Favourite.objects.create(user=alice, generation=generations[0])
    client.force_login(bob)
    post(client, "favourite", generations, next="/")
    assert Favourite.objects.filter(user=bob).count() == 3
    post(client, "unfavourite", generations[:2], next="/")
    assert list(Favourite.objects.filter(user=bob).values_list("generation", flat=True)) == [
        generations[2].pk
    ]
    assert Favourite.objects.filter(user=alice).count() == 1


def test_download_streams_a_zip_of_the_selected_images_only(alice, alice_client):
    chosen = [make_generation(alice, prompt=f"Chosen {n}", images=2) for n in range(2)]
    make_generation(alice, prompt="Not chosen")
    binned = make_generation(alice, prompt="Binned")
    Generation.objects.filter(pk=binned.pk).move_to_trash()
    response = alice_client.post(
        "/generations/bulk/", {"action": "download", "g": [*(g.pk for g in chosen), binned.pk]}
    )
    assert response.streaming and response["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    assert sorted(names) == ["chosen-0-1.png", "chosen-0-2.png", "chosen-1-1.png", "chosen-1-2.png"]


def test_without_javascript_the_bar_is_a_form_and_the_toast_follows(alice, alice_client):
    generations = [make_generation(alice) for _ in range(2)]
    page = alice_client.get("/").content.decode()
    assert re.search(r'<form id="bulk-form"[^>]*method="post" action="/generations/bulk/"', page)
    for generation in generations:
        assert f'name="g" value="{generation.pk}" form="bulk-form"' in page
    # "Select all on this page" works without JavaScript too: the page comes back ticked.
    ticked = alice_client.get("/?select=all").content.decode()
    assert ticked.count('form="bulk-form" data-select checked') == 2

    body = {"action": "trash", "g": [g.pk for g in generations], "next": "/?q=lighthouse"}
    response = alice_client.post("/generations/bulk/", body, follow=True)

    assert response.redirect_chain == [("/?q=lighthouse", 302)]
    html = response.content.decode()
    assert "Moved 2 generations to the trash." in html and "Undo" in html
    assert Generation.objects.trashed().count() == 2


def test_nothing_selected_says_so(alice, alice_client):
    response = alice_client.post("/generations/bulk/", {"action": "trash"}, **HTMX)
    assert response.status_code == 200
    assert "Select at least one image first." in response.content.decode()


def test_a_gallery_the_mover_may_not_add_to_is_refused(alice, bob, alice_client):
    theirs = Gallery.default_for(bob)
    generation = make_generation(alice)
    response = post(alice_client, "move", [generation], gallery=theirs.pk)
    assert response.status_code == 404
    generation.refresh_from_db()
    assert generation.gallery == Gallery.default_for(alice)
