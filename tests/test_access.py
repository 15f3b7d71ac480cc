"""Walk every URL that shows or changes a generation, image, gallery or share link as a
stranger (bob, signed in) and as an anonymous visitor: each answers 404 or a sign-in
redirect, and nothing in the database or the media folder changes.

The table below names every such URL; a test fails when a new URL that takes an object
appears without being added here, so the walk stays complete.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from gallery.models import Gallery, Generation, Image, ShareLink
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db

# URL name -> (the object of alice's it is reversed with, the method that acts, POST data).
# Each object is in a state where the action is allowed, so a missing check would show.
OWNER_URLS = {
    "generation_card": ("completed", "GET", {}),
    "generation_detail": ("completed", "GET", {}),
    "generation_retry": ("failed", "POST", {}),
    "generation_cancel": ("queued", "POST", {}),
    "generation_favourite": ("completed", "POST", {}),
    "generation_delete": ("completed", "POST", {}),
    "generation_move": ("completed", "POST", {"gallery": "bobs_gallery"}),
    "image_detail": ("image", "GET", {}),
    "image_original": ("image", "GET", {}),
    "image_thumbnail": ("image", "GET", {}),
    "image_download": ("image", "GET", {}),
    "gallery_rename": ("gallery", "POST", {"name": "Taken over"}),
    "gallery_delete": ("gallery", "POST", {"images": "delete"}),
    "gallery_zip": ("gallery", "GET", {}),
    "sharelink_create": ("gallery", "POST", {"label": "mine now", "expires_in": "never"}),
    "sharelink_revoke": ("link", "POST", {}),
}
# Public by design for a live link's own gallery; everything else through them must 404.
SHARE_GALLERY_URLS = ["share_gallery", "share_zip"]
SHARE_IMAGE_URLS = [
    "share_image",
    "share_image_original",
    "share_image_thumbnail",
    "share_image_download",
]
NOT_REVEALING = {404}
OTHER_METHOD_OK = {404, 405}


@pytest.fixture
def world(alice, bob):
    """Alice's things, each in a state where every action on it would be allowed."""
    gallery = Gallery.objects.create(owner=alice, name="Alice's private work")
    completed = make_generation(alice, gallery=gallery, prompt="Alice's secret plan", images=1)
    failed = make_generation(alice, gallery=gallery, images=0, status=Generation.Status.FAILED)
    queued = make_generation(alice, gallery=gallery, images=0, status=Generation.Status.IN_QUEUE)
    link = ShareLink.objects.create(gallery=gallery)
    other = Gallery.objects.create(owner=alice, name="Shared album")
    live = ShareLink.objects.create(gallery=other)
    unfinished = make_generation(alice, gallery=other, images=1)
    Generation.objects.filter(pk=unfinished.pk).update(status=Generation.Status.DOWNLOADING)
    now = timezone.now()
    return {
        "gallery": gallery,
        "completed": completed,
        "failed": failed,
        "queued": queued,
        "image": completed.images.get(),
        "link": link,
        "bobs_gallery": Gallery.default_for(bob),
        "revoked": ShareLink.objects.create(gallery=gallery, revoked_at=now),
        "expired": ShareLink.objects.create(gallery=gallery, expires_at=now - timedelta(hours=1)),
        "live_elsewhere": live,
        "unfinished_image": unfinished.images.get(),
    }


def snapshot(media_root):
    rows = {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Gallery, Generation, Image, ShareLink)
    }
    files = sorted(str(p.relative_to(media_root)) for p in Path(media_root).rglob("*"))
    return rows, files


def owner_requests(world):
    """(label, method, url, data) for each owner URL, with alice's object in it."""
    for name, (target, method, data) in OWNER_URLS.items():
        url = reverse(name, args=[world[target].pk])
        data = {key: world[value].pk if value in world else value for key, value in data.items()}
        yield name, method, url, data


def share_requests(world):
    """Every way a share URL could be misused: ended links, and images a link doesn't hold."""
    for name in SHARE_GALLERY_URLS:
        for link in ("revoked", "expired"):
            yield f"{name} ({link})", "GET", reverse(name, args=[world[link].token]), {}
        yield f"{name} (made-up token)", "GET", reverse(name, args=["x" * 32]), {}
    image = world["image"].pk
    for name in SHARE_IMAGE_URLS:
        for link in ("revoked", "expired"):
            yield f"{name} ({link})", "GET", reverse(name, args=[world[link].token, image]), {}
        live = world["live_elsewhere"].token
        yield f"{name} (other gallery)", "GET", reverse(name, args=[live, image]), {}
        unfinished = world["unfinished_image"].pk
        yield f"{name} (unfinished)", "GET", reverse(name, args=[live, unfinished]), {}


def walk(client, requests):
    """Send each request as it is meant, with htmx, and with the other method."""
    answers = []
    for label, method, url, data in requests:
        other = "get" if method == "POST" else "post"
        for how, response in (
            ("", getattr(client, method.lower())(url, data)),
            (" htmx", getattr(client, method.lower())(url, data, HTTP_HX_REQUEST="true")),
            (f" {other.upper()}", getattr(client, other)(url, data)),
        ):
            answers.append((label + how, response))
    return answers


def test_a_stranger_gets_404_everywhere_and_changes_nothing(client, bob, world, media_root):
    client.force_login(bob)
    before = snapshot(media_root)

    answers = walk(client, [*owner_requests(world), *share_requests(world)])

    wrong = [
        (label, r.status_code)
        for label, r in answers
        if r.status_code not in (OTHER_METHOD_OK if label.endswith(("GET", "POST")) else {404})
    ]
    assert wrong == []
    assert snapshot(media_root) == before


def test_an_anonymous_visitor_is_sent_to_sign_in_or_gets_404_and_changes_nothing(
    client, world, media_root
):
    before = snapshot(media_root)

    answers = walk(client, [*owner_requests(world), *share_requests(world)])

    wrong = []
    for label, response in answers:
        name = label.split(" ")[0]
        location = response.headers.get("Location", "")
        if name in OWNER_URLS and response.status_code == 302:
            if not location.startswith("/accounts/login/?next="):
                wrong.append((label, 302, location))
        elif response.status_code not in (
            OTHER_METHOD_OK if label.endswith(("GET", "POST")) else NOT_REVEALING
        ):
            wrong.append((label, response.status_code, location))
    assert wrong == []
    assert snapshot(media_root) == before


def test_the_walk_reaches_real_views_that_serve_the_owner(alice_client, world):
    # A 404 only means something if the owner, asking the same, is not refused.
    refused = []
    for label, method, url, data in owner_requests(world):
        with transaction.atomic():  # each request sees the world as it was set up
            response = getattr(alice_client, method.lower())(url, data)
            transaction.set_rollback(True)
        # Moving into bob's gallery is refused even for alice: it is not hers.
        if response.status_code == 404 and label != "generation_move":
            refused.append((label, response.status_code))
    assert refused == []


def test_listing_pages_show_a_stranger_nothing_of_anyone_else(client, bob, world):
    client.force_login(bob)
    gallery = world["gallery"]
    for url in ("/", f"/?gallery={gallery.pk}", "/galleries/"):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code in (200, 404), url
        assert "Alice&#x27;s private work" not in html, url
        assert "Alice&#x27;s secret plan" not in html, url
        assert f"/media/images/{world['image'].pk}/" not in html, url


def test_a_stranger_cannot_generate_into_someone_elses_gallery(client, bob, world):
    client.force_login(bob)
    client.post(
        "/generate/",
        {
            "prompt": "Sneaky",
            "image_size": "1024x1024",
            "background": "auto",
            "quality": "low",
            "num_images": 1,
            "output_format": "png",
            "gallery": world["gallery"].pk,
        },
    )
    assert not world["gallery"].generations.filter(prompt="Sneaky").exists()


def test_every_url_that_takes_an_object_is_in_the_walk():
    def names(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace != "admin":
                    yield from names(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield pattern.name, bool(pattern.pattern.converters)

    walked = set(OWNER_URLS) | set(SHARE_GALLERY_URLS) | set(SHARE_IMAGE_URLS) | set(IDENTITY_URLS)
    app_urls = dict(names(get_resolver().url_patterns))
    taking_an_object = {name for name, has_arguments in app_urls.items() if has_arguments}
    assert taking_an_object - walked == set()
    assert walked - taking_an_object == set()


# -- accounts (issue 14): invitations and password reset links ------------------------------
# A stranger (bob, signed in but not staff) and an anonymous visitor get a 404 or the sign-in
# page from each, and nothing changes: no invitation is revoked or accepted, no password set.

IDENTITY_URLS = ["invitation_revoke", "invitation_accept", "password_reset_confirm"]


@pytest.fixture
def identity_world(alice, staff):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from gallery.models import Invitation

    pending, _token = Invitation.issue("dora@example.com", invited_by=staff)
    used, used_token = Invitation.issue("eve@example.com", invited_by=staff)
    used.claim()
    revoked, revoked_token = Invitation.issue("fay@example.com", invited_by=staff)
    revoked.revoke()
    uid = urlsafe_base64_encode(force_bytes(alice.pk))
    stale = default_token_generator.make_token(alice)
    alice.set_password("changed-since-the-link-was-made")
    alice.save()
    return {
        "revoke": ("POST", reverse("invitation_revoke", args=[pending.pk]), {}),
        "accept used": ("GET", reverse("invitation_accept", args=[used_token]), {}),
        "accept revoked": (
            "POST",
            reverse("invitation_accept", args=[revoked_token]),
            {"username": "fay", "password1": "velvet-lantern-42", "password2": "velvet-lantern-42"},
        ),
        "accept made-up": ("GET", reverse("invitation_accept", args=["x" * 43]), {}),
        "reset stale link": ("GET", reverse("password_reset_confirm", args=[uid, stale]), {}),
    }


def identity_snapshot():
    from django.contrib.auth import get_user_model

    from gallery.models import Invitation

    users = list(get_user_model().objects.order_by("pk").values("pk", "password", "is_active"))
    return users, list(Invitation.objects.order_by("pk").values())


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
def test_identity_links_refuse_strangers_and_change_nothing(client, bob, identity_world, who):
    if who == "stranger":
        client.force_login(bob)
    before = identity_snapshot()
    wrong = []
    for label, (method, url, data) in identity_world.items():
        response = getattr(client, method.lower())(url, data)
        location = response.headers.get("Location", "")
        signed_out_to_login = who == "anonymous" and location.startswith("/accounts/login/?next=")
        reset_link_refused = label == "reset stale link" and "doesn" in response.text
        if response.status_code != 404 and not signed_out_to_login and not reset_link_refused:
            wrong.append((label, response.status_code, location))
    assert wrong == []
    assert identity_snapshot() == before
