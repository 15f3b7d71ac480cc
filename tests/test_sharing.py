import re
from datetime import datetime, timedelta
from html import unescape

import pytest
from django.test import Client
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
    assert all(len(token) >= 43 for token in tokens)  # 32 random bytes: 256 bits
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", token) for token in tokens)


def new_link_url(html):
    found = re.search(r'value="http://testserver/s/([A-Za-z0-9_-]+)/"', html)
    return found.group(1) if found else None


def test_creating_a_link_with_htmx_shows_the_whole_link_once_ready_to_copy(alice_client, gallery):
    response = alice_client.post(
        f"/galleries/{gallery.pk}/links/new/", {"label": "Team", "expires_in": "7"}, **HTMX
    )
    link = gallery.share_links.get()
    html = response.content.decode()
    assert "<html" not in html
    assert '<details class="gallery-panel" open>' in html
    token = new_link_url(html)
    assert ShareLink.objects.with_token(token) == link
    assert f'data-copy="new-link-{link.pk}"' in html
    assert "can’t show it again" in html
    assert "no-store" in response["Cache-Control"]
    # Afterwards: the label, the prefix and the settings, never the whole link again.
    later = alice_client.get("/galleries/").content.decode()
    assert token not in later
    assert f"/s/{token[:8]}…" in later
    assert "Team" in later


def test_creating_a_link_without_javascript_shows_the_page_with_the_link(alice_client, gallery):
    response = alice_client.post(
        f"/galleries/{gallery.pk}/links/new/", {"label": "Client", "expires_in": "never"}
    )
    assert response.status_code == 200
    token = new_link_url(response.content.decode())
    assert ShareLink.objects.with_token(token) == gallery.share_links.get()


def test_an_unknown_expiry_is_refused(alice_client, gallery):
    response = alice_client.post(
        f"/galleries/{gallery.pk}/links/new/", {"label": "x", "expires_in": "365"}
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not gallery.share_links.exists()


def test_the_owner_sees_live_links_apart_from_ended_ones_with_when_and_why(alice_client, gallery):
    now = timezone.now()
    live = ShareLink.objects.create(
        gallery=gallery, label="Live one", view_count=3, last_opened_at=now - timedelta(hours=2)
    )
    ShareLink.objects.create(gallery=gallery, label="Capped one", view_count=2, max_views=5)
    ShareLink.objects.create(
        gallery=gallery,
        label="Old one",
        expires_at=timezone.make_aware(datetime(2026, 3, 1, 9, 30)),
        view_count=1,
    )
    ShareLink.objects.create(
        gallery=gallery, label="Pulled one", revoked_at=timezone.make_aware(datetime(2026, 5, 2, 8))
    )

    html = alice_client.get("/galleries/").content.decode()
    active, ended = html.split('aria-label="Ended links"')

    assert re.search(r"Live one</strong>\s*<span class=\"badge badge--ok\">Live", active)
    assert "3 views" in active and "last opened" in active and "2\xa0hours ago" in active
    assert "2 of 5 views used" in active and "not opened yet" in active
    assert "Old one" not in active and "Pulled one" not in active
    assert re.search(r"Old one</strong>\s*<span class=\"badge badge--warn\">Expired", ended)
    assert "expired 1 Mar 2026, 09:30" in ended
    assert re.search(r"Pulled one</strong>\s*<span class=\"badge badge--danger\">Revoked", ended)
    assert "revoked by you 2 May 2026, 08:00" in ended
    # Only live links can be previewed, changed or revoked; none can be copied again.
    assert active.count("Revoke…") == 2 and "Revoke…" not in ended and "/edit/" not in ended
    assert "data-copy=" not in html
    assert f"/links/{live.pk}/preview/" in active
    assert live.token not in html


def test_revoking_one_link_leaves_the_others_live(alice_client, gallery):
    first = ShareLink.objects.create(gallery=gallery)
    second = ShareLink.objects.create(gallery=gallery)

    response = alice_client.post(f"/links/{first.pk}/revoke/")

    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.revoked_at is not None and not first.is_live
    assert second.is_live
    assert alice_client.get(f"/s/{first.token}/").status_code == 410
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
        assert f'src="/s/{link.token}/images/{image.pk}/display/"' in html
        assert f'href="/s/{link.token}/images/{image.pk}/"' in html
        assert f"/s/{link.token}/images/{image.pk}/download/" in html
    assert f'href="/s/{link.token}/download.zip"' in html
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert "private" in response["Cache-Control"]


def test_the_shared_page_never_shows_who_owns_it_or_the_private_label(client, alice, gallery, link):
    make_generation(alice, gallery=gallery, images=1)
    html = client.get(f"/s/{link.token}/").content.decode()
    assert "alice" not in html.lower()
    assert "For the printer" not in html
    assert "/media/images/" not in html  # the owner's own media URLs


def test_a_share_page_offers_a_client_no_sign_up_or_sign_in(client, alice, gallery, link, settings):
    make_generation(alice, gallery=gallery, images=1)
    image = gallery.generations.get().images.get()
    for url in (f"/s/{link.token}/", f"/s/{link.token}/images/{image.pk}/", "/s/" + "x" * 43 + "/"):
        html = client.get(url).content.decode()
        assert "Sign up" not in html and "/accounts/signup/" not in html, url
        assert "/accounts/login/" not in html, url
    # Elsewhere a signed-out visitor is still offered both.
    assert "Sign up" in client.get("/accounts/login/").content.decode()


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


def test_a_very_large_cover_is_previewed_by_its_display_rendition(client, alice, gallery, link):
    generation = make_generation(alice, gallery=gallery, images=1)
    image = generation.images.get()
    image.size_bytes = 9 * 1024 * 1024
    image.save()
    html = client.get(f"/s/{link.token}/").content.decode()
    assert meta(html, "property", "og:image").endswith(f"/images/{image.pk}/display/")


def test_an_empty_shared_gallery_says_so_and_offers_no_zip(client, link):
    response = client.get(f"/s/{link.token}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "No images here yet." in html
    assert "download.zip" not in html
    assert meta(html, "property", "og:image") is None


def test_a_browser_uses_one_view_however_often_it_comes_back(client, alice, gallery, link):
    image = make_generation(alice, gallery=gallery, images=1).images.get()
    for _ in range(3):
        client.get(f"/s/{link.token}/")
    client.get(f"/s/{link.token}/images/{image.pk}/")
    link.refresh_from_db()
    assert link.view_count == 1
    assert link.last_opened_at is not None
    Client().get(f"/s/{link.token}/")  # another browser
    link.refresh_from_db()
    assert link.view_count == 2


def test_a_preview_bot_may_check_with_head_without_counting_a_view(client, alice, gallery, link):
    image = make_generation(alice, gallery=gallery, images=1).images.get()
    assert client.head(f"/s/{link.token}/").status_code == 200
    assert client.head(f"/s/{link.token}/images/{image.pk}/original/").status_code == 200
    link.refresh_from_db()
    assert link.view_count == 0


@pytest.mark.parametrize(
    "agent",
    [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "WhatsApp/2.23.20.0 A",
        "facebookexternalhit/1.1 Facebot Twitterbot/1.0",  # iMessage
        "Twitterbot/1.0",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    ],
)
def test_chat_unfurlers_get_the_preview_and_use_no_view(client, alice, gallery, link, agent):
    make_generation(alice, gallery=gallery, prompt="A red kite", images=1)
    response = client.get(f"/s/{link.token}/", headers={"User-Agent": agent})
    html = response.content.decode()
    assert response.status_code == 200
    assert meta(html, "property", "og:title") == "Lighthouses"
    assert meta(html, "property", "og:image")
    assert 'class="shared-tile"' not in html  # the preview, not the gallery
    link.refresh_from_db()
    assert link.view_count == 0


def test_an_in_app_browser_is_a_person_and_uses_a_view(client, link):
    agent = "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 [FBAN/FBIOS;FBAV/400.0]"
    client.get(f"/s/{link.token}/", headers={"User-Agent": agent})
    link.refresh_from_db()
    assert link.view_count == 1


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


def test_a_shared_image_opens_on_its_own_page_at_display_size(client, alice, gallery, link):
    image = make_generation(alice, gallery=gallery, prompt="A red kite", images=1).images.get()

    response = client.get(f"/s/{link.token}/images/{image.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'src="/s/{link.token}/images/{image.pk}/display/"' in html
    assert f'srcset="/s/{link.token}/images/{image.pk}/display/ 96w"' in html
    body = html.split("<body", 1)[1]
    assert f"/s/{link.token}/images/{image.pk}/original/" not in body  # only on Download
    assert f'href="/s/{link.token}/images/{image.pk}/download/"' in html
    assert f'href="/s/{link.token}/"' in html
    assert meta(html, "property", "og:description") == "A red kite"
    assert "alice" not in html.lower()


@pytest.mark.parametrize("ended", ["revoked", "expired"])
def test_a_revoked_or_expired_link_answers_410_for_its_page_images_and_zip(
    client, alice, gallery, link, ended
):
    image = make_generation(alice, gallery=gallery, images=1).images.get()
    base = f"/s/{link.token}"
    urls = [
        f"{base}/",
        f"{base}/images/{image.pk}/",
        f"{base}/images/{image.pk}/original/",
        f"{base}/images/{image.pk}/thumbnail/",
        f"{base}/images/{image.pk}/display/",
        f"{base}/images/{image.pk}/download/",
        f"{base}/download.zip",
    ]
    assert [client.get(url).status_code for url in urls] == [200] * len(urls)

    if ended == "revoked":
        link.revoke()
    else:
        link.expires_at = timezone.now() - timedelta(seconds=1)
        link.save(update_fields=["expires_at"])

    assert [client.get(url).status_code for url in urls] == [410] * len(urls)
    html = client.get(f"{base}/").content.decode()
    assert "This link has ended" in html and "ask them for a new link" in html
    assert "Lighthouses" not in html
    assert 'class="site-header"' in html  # Darkroom's look, not a bare error
    link.refresh_from_db()
    assert link.view_count == 1  # the refused visits are not counted


def test_an_unknown_token_answers_darkrooms_404(client):
    for token in ("not-a-real-token-at-all", "x" * 43):
        response = client.get(f"/s/{token}/")
        assert response.status_code == 404
        assert "Link not found" in response.content.decode()


def test_the_database_holds_no_usable_token(gallery):
    from django.db import connection

    link = ShareLink.objects.create(gallery=gallery)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM gallery_sharelink")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert link.token not in stored
    assert link.token[8:] not in stored  # only the prefix is kept in clear
    assert link.token[:8] in stored
    # What is stored does not open the link.
    row = ShareLink.objects.get()
    assert ShareLink.objects.with_token(row.token_hash) is None
    assert ShareLink.objects.with_token(row.token_prefix) is None
    assert ShareLink.objects.with_token(link.token) == row


def test_a_token_differing_only_after_the_prefix_opens_nothing(client, link):
    forged = link.token[:8] + ("A" if link.token[8] != "A" else "B") + link.token[9:]
    assert ShareLink.objects.with_token(forged) is None
    assert client.get(f"/s/{forged}/").status_code == 404


def edit(client, link, **changes):
    data = {
        "label": link.label,
        "expires_in": "keep",
        "max_views": link.max_views or "",
        **({"allow_downloads": "on"} if link.allow_downloads else {}),
        **({"show_prompts": "on"} if link.show_prompts else {}),
    }
    data.update(changes)
    return client.post(f"/links/{link.pk}/edit/", {k: v for k, v in data.items() if v is not None})


def test_the_owner_changes_a_live_links_settings_and_its_token_stays(alice_client, link):
    expires_at = link.expires_at
    response = edit(
        alice_client,
        link,
        label="For the client",
        password="harbour-lights",
        allow_downloads=None,
        show_prompts=None,
        max_views="5",
    )
    assert response.status_code == 302
    changed = ShareLink.objects.get(pk=link.pk)
    assert (changed.label, changed.allow_downloads, changed.show_prompts) == (
        "For the client",
        False,
        False,
    )
    assert changed.max_views == 5 and changed.expires_at == expires_at
    assert changed.check_password("harbour-lights")
    assert changed.password != "harbour-lights"  # stored by Django's hashers
    assert ShareLink.objects.with_token(link.token) == changed  # the same link
    assert 'name="password"' in Client().get(f"/s/{link.token}/").content.decode()


def test_editing_keeps_the_views_visitors_used_meanwhile(alice_client, link):
    ShareLink.objects.get(pk=link.pk).take_view()  # a visitor, while the form was open
    edit(alice_client, link, label="Renamed")  # `link` is the owner's stale copy
    link.refresh_from_db()
    assert (link.label, link.view_count) == ("Renamed", 1)


def test_a_new_password_locks_out_browsers_that_gave_the_old_one(alice_client, link, client):
    link.set_password("first-password")
    link.save()
    page = client.get(f"/s/{link.token}/")
    assert 'name="password"' in page.content.decode()
    assert client.post(f"/s/{link.token}/", {"password": "first-password"}).status_code == 302
    assert "Lighthouses" in client.get(f"/s/{link.token}/").content.decode()

    edit(alice_client, link, password="second-password")
    assert 'name="password"' in client.get(f"/s/{link.token}/").content.decode()

    edit(alice_client, ShareLink.objects.get(pk=link.pk), remove_password="on")
    assert "Lighthouses" in client.get(f"/s/{link.token}/").content.decode()


def test_a_short_link_password_is_refused_and_nothing_changes(alice_client, gallery, link):
    response = edit(alice_client, link, password="abc", label="Changed")
    assert response.status_code == 200
    assert "Use at least 6 characters" in response.content.decode()
    link.refresh_from_db()
    assert link.label == "For the printer" and not link.has_password
    response = alice_client.post(
        f"/galleries/{gallery.pk}/links/new/", {"expires_in": "7", "password": "abc"}
    )
    assert "Use at least 6 characters" in response.content.decode()
    assert gallery.share_links.count() == 1


def test_raising_the_limit_of_a_used_up_link_lets_visitors_in_again(alice_client, link):
    ShareLink.objects.filter(pk=link.pk).update(max_views=1, view_count=1)
    assert Client().get(f"/s/{link.token}/").status_code == 404
    edit(alice_client, ShareLink.objects.get(pk=link.pk), max_views="2")
    assert Client().get(f"/s/{link.token}/").status_code == 200


def test_an_ended_link_can_not_be_changed(alice_client, link):
    link.revoke()
    edit(alice_client, link, label="Back again", max_views="9")
    link.refresh_from_db()
    assert link.label == "For the printer" and link.max_views is None


def test_the_owners_preview_applies_the_links_settings_and_counts_no_view(
    alice_client, alice, gallery, link
):
    image = make_generation(alice, gallery=gallery, prompt="A secret brief", images=1).images.get()
    link.show_prompts = link.allow_downloads = False
    link.save()

    response = alice_client.get(f"/links/{link.pk}/preview/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Preview of “For the printer”" in html and "Prompts are hidden" in html
    assert "Lighthouses" in html
    assert "A secret brief" not in html
    assert f'src="/media/images/{image.pk}/display/"' in html
    assert "/download/" not in html and "download.zip" not in html
    assert f'href="/links/{link.pk}/preview/images/{image.pk}/"' in html
    image_page = alice_client.get(f"/links/{link.pk}/preview/images/{image.pk}/").content.decode()
    assert "A secret brief" not in image_page and "/original/" not in image_page
    link.refresh_from_db()
    assert link.view_count == 0


def test_darkroom_has_its_own_error_pages_with_a_way_home(client, alice_client, rf):
    from django.views.defaults import permission_denied, server_error

    response = alice_client.get("/no/such/page/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in html and 'href="/"' in html and 'class="site-header"' in html
    denied = permission_denied(rf.get("/"), exception=None)
    assert denied.status_code == 403 and "You can’t do that here" in denied.content.decode()
    failed = server_error(rf.get("/"))  # rendered without a request's context
    assert failed.status_code == 500
    assert "Something went wrong on our side" in failed.content.decode()
    assert 'href="/"' in failed.content.decode()
