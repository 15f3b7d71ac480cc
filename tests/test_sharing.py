import re
from datetime import timedelta
from html import unescape

import pytest
from django.utils import timezone

from gallery.models import Gallery, Generation, ShareLink
from gallery.views.share import SHARE_PAGE_SIZE
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def gallery(alice):
    return Gallery.objects.create(owner=alice, name="Lighthouses")


@pytest.fixture
def link(gallery):
    return ShareLink.objects.create(gallery=gallery, label="For the printer")


def meta(html, attribute, name):
    found = re.search(rf'<meta {attribute}="{re.escape(name)}" content="([^"]*)">', html)
    return unescape(found.group(1)) if found else None


@pytest.mark.parametrize(
    ("choice", "lifetime"),
    [("1", timedelta(days=1)), ("7", timedelta(days=7)), ("30", timedelta(days=30))],
)
def test_a_new_link_expires_after_the_chosen_time(alice_client, gallery, choice, lifetime):
    before = timezone.now()
    alice_client.post(
        f"/galleries/{gallery.pk}/links/new/", {"label": "Client", "expires_in": choice}
    )
    link = gallery.share_links.get()
    assert link.label == "Client"
    assert before + lifetime <= link.expires_at <= timezone.now() + lifetime


def test_a_new_link_may_never_expire(alice_client, gallery):
    alice_client.post(f"/galleries/{gallery.pk}/links/new/", {"label": "", "expires_in": "never"})
    link = gallery.share_links.get()
    assert link.expires_at is None
    assert link.is_live


def test_a_link_token_is_long_random_and_unrelated_to_ids(gallery):
    tokens = {ShareLink.objects.create(gallery=gallery).token for _ in range(20)}
    assert len(tokens) == 20
    assert all(len(token) >= 32 for token in tokens)  # 24 random bytes: 192 bits
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", token) for token in tokens)


def test_creating_a_link_with_htmx_answers_the_card_with_the_link_ready_to_copy(
    alice_client, gallery
):
    response = alice_client.post(
        f"/galleries/{gallery.pk}/links/new/", {"label": "Team", "expires_in": "7"}, **HTMX
    )
    link = gallery.share_links.get()
    html = response.content.decode()
    assert "<html" not in html
    assert '<details class="gallery-panel" open>' in html
    assert f'value="http://testserver/s/{link.token}/"' in html
    assert f'data-copy="share-url-{link.pk}"' in html


def test_an_unknown_expiry_is_refused(alice_client, gallery):
    response = alice_client.post(
        f"/galleries/{gallery.pk}/links/new/", {"label": "x", "expires_in": "365"}
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not gallery.share_links.exists()


def test_the_owner_sees_every_link_with_views_expiry_and_status(alice_client, gallery):
    now = timezone.now()
    live = ShareLink.objects.create(gallery=gallery, label="Live one", view_count=3)
    ShareLink.objects.create(
        gallery=gallery, label="Old one", expires_at=now - timedelta(hours=1), view_count=1
    )
    ShareLink.objects.create(gallery=gallery, label="Pulled one", revoked_at=now)

    html = alice_client.get("/galleries/").content.decode()

    assert re.search(r"Live one</strong>\s*<span class=\"badge badge--ok\">Live", html)
    assert re.search(r"Old one</strong>\s*<span class=\"badge badge--warn\">Expired", html)
    assert re.search(r"Pulled one</strong>\s*<span class=\"badge badge--danger\">Revoked", html)
    assert "3 views" in html and "1 view ·" in html
    assert "never expires" in html
    # Only a live link can be copied again or revoked.
    assert html.count("data-copy=") == 1
    assert f'value="http://testserver/s/{live.token}/"' in html


def test_revoking_one_link_leaves_the_others_live(alice_client, gallery):
    first = ShareLink.objects.create(gallery=gallery)
    second = ShareLink.objects.create(gallery=gallery)

    response = alice_client.post(f"/links/{first.pk}/revoke/")

    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.revoked_at is not None and not first.is_live
    assert second.is_live
    assert alice_client.get(f"/s/{first.token}/").status_code == 404
    assert alice_client.get(f"/s/{second.token}/").status_code == 200


def test_the_shared_page_shows_completed_images_to_anyone(client, alice, gallery, link):
    done = make_generation(alice, gallery=gallery, prompt="A lighthouse in fog", images=2)
    make_generation(alice, gallery=gallery, prompt="Still cooking", images=0, status="IN_QUEUE")
    failed = make_generation(alice, gallery=gallery, prompt="Went wrong", images=1)
    Generation.objects.filter(pk=failed.pk).update(status=Generation.Status.FAILED)
    make_generation(alice, prompt="In another gallery", images=1)

    response = client.get(f"/s/{link.token}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Lighthouses" in html
    assert "A lighthouse in fog" in html
    for hidden in ("Still cooking", "Went wrong", "In another gallery"):
        assert hidden not in html
    for image in done.images.all():
        assert f"/s/{link.token}/images/{image.pk}/thumbnail/" in html
        assert f'href="/s/{link.token}/images/{image.pk}/"' in html
        assert f"/s/{link.token}/images/{image.pk}/download/" in html
    assert f'href="/s/{link.token}/download.zip"' in html
    assert response["X-Robots-Tag"] == "noindex, nofollow"


def test_the_shared_page_never_shows_who_owns_it_or_the_private_label(client, alice, gallery, link):
    make_generation(alice, gallery=gallery, images=1)
    html = client.get(f"/s/{link.token}/").content.decode()
    assert "alice" not in html.lower()
    assert "For the printer" not in html
    assert "/media/images/" not in html  # the owner's own media URLs


def test_the_shared_page_unfurls_in_chat_with_a_title_a_description_and_a_cover(
    client, alice, gallery, link
):
    make_generation(alice, gallery=gallery, prompt="Older", images=1)
    newest = make_generation(alice, gallery=gallery, prompt="A red kite", images=1)
    cover = newest.images.get()

    html = client.get(f"/s/{link.token}/").content.decode()

    assert meta(html, "property", "og:title") == "Lighthouses"
    assert meta(html, "property", "og:description") == "2 images made with Darkroom"
    assert meta(html, "property", "og:url") == f"http://testserver/s/{link.token}/"
    image_url = meta(html, "property", "og:image")
    assert image_url == f"http://testserver/s/{link.token}/images/{cover.pk}/original/"
    assert meta(html, "property", "og:image:alt") == "A red kite"
    assert meta(html, "name", "twitter:card") == "summary_large_image"
    assert meta(html, "name", "twitter:image") == image_url
    assert client.get(image_url).status_code == 200  # a crawler has no account either


def test_a_very_large_cover_is_previewed_by_its_thumbnail(client, alice, gallery, link):
    generation = make_generation(alice, gallery=gallery, images=1)
    image = generation.images.get()
    image.size_bytes = 9 * 1024 * 1024
    image.save()
    html = client.get(f"/s/{link.token}/").content.decode()
    assert meta(html, "property", "og:image").endswith(f"/images/{image.pk}/thumbnail/")


def test_an_empty_shared_gallery_says_so_and_offers_no_zip(client, link):
    response = client.get(f"/s/{link.token}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "No images here yet." in html
    assert "download.zip" not in html
    assert meta(html, "property", "og:image") is None


def test_each_view_of_the_shared_page_is_counted(client, link):
    for _ in range(3):
        client.get(f"/s/{link.token}/")
    link.refresh_from_db()
    assert link.view_count == 3


def test_a_preview_bot_may_check_with_head_without_counting_a_view(client, alice, gallery, link):
    image = make_generation(alice, gallery=gallery, images=1).images.get()
    assert client.head(f"/s/{link.token}/").status_code == 200
    assert client.head(f"/s/{link.token}/images/{image.pk}/original/").status_code == 200
    link.refresh_from_db()
    assert link.view_count == 0


def test_the_shared_page_is_paginated(client, alice, gallery, link):
    for n in range(SHARE_PAGE_SIZE + 2):
        make_generation(alice, gallery=gallery, prompt=f"Image number {n:02d}", images=1)

    first = client.get(f"/s/{link.token}/").content.decode()
    second = client.get(f"/s/{link.token}/?page=2").content.decode()

    assert first.count('class="shared-tile"') == SHARE_PAGE_SIZE
    assert second.count('class="shared-tile"') == 2
    assert "Image number 25" in first and "Image number 00" in second
    assert 'href="?page=2" rel="next"' in first
    assert "Page 2 of 2" in second


def test_a_shared_image_opens_on_its_own_page(client, alice, gallery, link):
    image = make_generation(alice, gallery=gallery, prompt="A red kite", images=1).images.get()

    response = client.get(f"/s/{link.token}/images/{image.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'src="/s/{link.token}/images/{image.pk}/original/"' in html
    assert f'href="/s/{link.token}/images/{image.pk}/download/"' in html
    assert f'href="/s/{link.token}/"' in html
    assert meta(html, "property", "og:description") == "A red kite"
    assert "alice" not in html.lower()


@pytest.mark.parametrize("ended", ["revoked", "expired"])
def test_a_revoked_or_expired_link_answers_404_for_its_page_images_and_zip(
    client, alice, gallery, link, ended
):
    image = make_generation(alice, gallery=gallery, images=1).images.get()
    base = f"/s/{link.token}"
    urls = [
        f"{base}/",
        f"{base}/images/{image.pk}/",
        f"{base}/images/{image.pk}/original/",
        f"{base}/images/{image.pk}/thumbnail/",
        f"{base}/images/{image.pk}/download/",
        f"{base}/download.zip",
    ]
    assert [client.get(url).status_code for url in urls] == [200] * len(urls)

    if ended == "revoked":
        link.revoke()
    else:
        link.expires_at = timezone.now() - timedelta(seconds=1)
        link.save(update_fields=["expires_at"])

    assert [client.get(url).status_code for url in urls] == [404] * len(urls)
    link.refresh_from_db()
    assert link.view_count == 1  # the refused visit is not counted


def test_an_unknown_token_answers_404(client):
    assert client.get("/s/not-a-real-token-at-all/").status_code == 404
