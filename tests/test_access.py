"""Who may see and change what: the README's access table, row by row.

Alice owns two galleries: "Studio plans" (private, Bob contributes, Carol views, Erin
contributed until she was removed) and "Open board" (open to the team, no members).
Dave is signed in and a member of neither. Every URL that shows or changes a generation,
image, gallery, membership or share link is asked by each of them and by an anonymous
visitor. Whoever the row allows gets a real answer (and, for a POST, a change); everyone
else gets 404 (anonymous: the sign-in page), and nothing in the database or the media
folder changes.

A test fails when a URL that takes an object is not in the table, so the walk stays
complete.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from gallery.models import (
    ApiToken,
    Favourite,
    Gallery,
    GalleryMember,
    Generation,
    Image,
    ShareLink,
)
from tests.conftest import make_user
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db
S = Generation.Status

ACTORS = ["owner", "contributor", "viewer", "outsider", "removed", "anonymous"]
SIGNED_IN = {"owner", "contributor", "viewer", "outsider", "removed"}
SEES_PRIVATE = {"owner", "contributor", "viewer"}

# (URL name, the object it is reversed with, method, POST data, who may).
# Data values naming an object of the world are replaced by its pk; "own gallery" is the
# asker's default gallery (where a mover may move to).
ROWS = [
    # Seeing a generation, its images and their files.
    ("generation_detail", "plan", "GET", {}, SEES_PRIVATE),
    ("generation_detail", "board_done", "GET", {}, SIGNED_IN),
    ("image_detail", "plan_image", "GET", {}, SEES_PRIVATE),
    ("image_detail", "board_image", "GET", {}, SIGNED_IN),
    ("image_original", "plan_image", "GET", {}, SEES_PRIVATE),
    ("image_original", "board_image", "GET", {}, SIGNED_IN),
    ("image_thumbnail", "plan_image", "GET", {}, SEES_PRIVATE),
    ("image_thumbnail", "board_image", "GET", {}, SIGNED_IN),
    ("image_download", "bobs_image", "GET", {}, SEES_PRIVATE),
    ("image_download", "board_image", "GET", {}, SIGNED_IN),
    ("image_download", "erins_image", "GET", {}, SEES_PRIVATE),  # not Erin's any more
    ("gallery_zip", "plans", "GET", {}, SEES_PRIVATE),
    ("gallery_zip", "board", "GET", {}, SIGNED_IN),
    # A favourite is each person's own: anyone who sees it may star it.
    ("generation_favourite", "plan", "POST", {"favourite": "1"}, SEES_PRIVATE),
    ("generation_favourite", "board_done", "POST", {"favourite": "1"}, SIGNED_IN),
    # Retry and cancel: only who made it (their quota), while they may still add.
    ("generation_retry", "plan_failed", "POST", {}, {"owner"}),
    ("generation_retry", "bobs_failed", "POST", {}, {"contributor"}),
    ("generation_retry", "erins_failed", "POST", {}, set()),
    ("generation_cancel", "plan_queued", "POST", {}, {"owner"}),
    ("generation_cancel", "bobs_queued", "POST", {}, {"contributor"}),
    # Delete and move: the gallery's owner, or who made it while they contribute.
    ("generation_delete", "plan", "POST", {}, {"owner"}),
    ("generation_delete", "bobs", "POST", {}, {"owner", "contributor"}),
    ("generation_delete", "erins", "POST", {}, {"owner"}),
    ("generation_delete", "board_done", "POST", {}, {"owner"}),
    ("generation_move", "plan", "POST", {"gallery": "own gallery"}, {"owner"}),
    ("generation_move", "bobs", "POST", {"gallery": "own gallery"}, {"owner", "contributor"}),
    ("generation_move", "erins", "POST", {"gallery": "own gallery"}, {"owner"}),
    # Everything else about a gallery is its owner's.
    ("gallery_rename", "plans", "POST", {"name": "Taken over"}, {"owner"}),
    ("gallery_rename", "board", "POST", {"name": "Taken over"}, {"owner"}),
    ("gallery_delete", "plans", "POST", {"images": "delete"}, {"owner"}),
    ("gallery_delete", "board", "POST", {"images": "keep"}, {"owner"}),
    ("gallery_visibility", "plans", "POST", {"visibility": "team"}, {"owner"}),
    ("gallery_budget", "plans", "POST", {"monthly_budget": "5"}, {"owner"}),
    ("gallery_budget", "board", "POST", {"monthly_budget": ""}, {"owner"}),
    ("gallery_visibility", "board", "POST", {"visibility": "private"}, {"owner"}),
    ("member_add", "plans", "POST", {"member": "dave", "role": "contributor"}, {"owner"}),
    ("member_add", "board", "POST", {"member": "dave", "role": "contributor"}, {"owner"}),
    ("member_role", "bob_membership", "POST", {"role": "viewer"}, {"owner"}),
    ("member_role", "carol_membership", "POST", {"role": "contributor"}, {"owner"}),
    ("member_remove", "bob_membership", "POST", {}, {"owner"}),
    ("member_remove", "carol_membership", "POST", {}, {"owner"}),
    ("gallery_leave", "plans", "POST", {}, {"contributor", "viewer"}),
    ("gallery_leave", "board", "POST", {}, set()),  # open to the team: no one to leave
    ("sharelink_create", "plans", "POST", {"label": "mine", "expires_in": "never"}, {"owner"}),
    ("sharelink_create", "board", "POST", {"label": "mine", "expires_in": "never"}, {"owner"}),
    ("sharelink_revoke", "plans_link", "POST", {}, {"owner"}),
    ("sharelink_edit", "plans_link", "POST", {"label": "x", "expires_in": "keep"}, {"owner"}),
    ("sharelink_preview", "plans_link", "GET", {}, {"owner"}),
    ("sharelink_preview_image", ("plans_link", "plan_image"), "GET", {}, {"owner"}),
    ("image_display", "plan_image", "GET", {}, SEES_PRIVATE),
    ("image_display", "board_image", "GET", {}, SIGNED_IN),
    # A personal API token is its owner's alone (the API itself: the API section below).
    ("api_token_revoke", "alice_token", "POST", {}, {"owner"}),
    # The trash (issue 20): who may remove a generation may restore it or delete it forever
    # (a URL without an object: the generations are posted as `g`).
    ("trash", None, "GET", {}, SIGNED_IN),  # each their own: what it lists is tested below
    ("trash_thumbnail", "plan_trashed_image", "GET", {}, {"owner"}),
    ("trash_thumbnail", "bobs_trashed_image", "GET", {}, {"owner", "contributor"}),
    ("trash_restore", None, "POST", {"g": "plan_trashed"}, {"owner"}),
    ("trash_restore", None, "POST", {"g": "bobs_trashed"}, {"owner", "contributor"}),
    ("trash_restore", None, "POST", {"g": "erins_trashed"}, {"owner"}),
    ("trash_delete", None, "POST", {"g": "plan_trashed"}, {"owner"}),
    ("trash_delete", None, "POST", {"g": "bobs_trashed"}, {"owner", "contributor"}),
    # The select bar: one request for many, each changed only as its single card allows.
    ("generation_bulk", None, "POST", {"action": "trash", "g": "plan"}, {"owner"}),
    ("generation_bulk", None, "POST", {"action": "trash", "g": "bobs"}, {"owner", "contributor"}),
    ("generation_bulk", None, "POST", {"action": "trash", "g": "erins"}, {"owner"}),
    ("generation_bulk", None, "POST", {"action": "trash", "g": "board_done"}, {"owner"}),
    ("generation_bulk", None, "POST", {"action": "favourite", "g": "plan"}, SEES_PRIVATE),
    ("generation_bulk", None, "POST", {"action": "favourite", "g": "board_done"}, SIGNED_IN),
    (
        "generation_bulk",
        None,
        "POST",
        {"action": "move", "g": "bobs", "gallery": "own gallery"},
        {"owner", "contributor"},
    ),
    ("generation_bulk", None, "POST", {"action": "trash", "g": "plan_trashed"}, set()),
    # Compare: whoever may see both images (each through image_for_user).
    ("compare", None, "GET", {"a": "plan_image", "b": "bobs_image"}, SEES_PRIVATE),
    ("compare", None, "GET", {"a": "board_image", "b": "plan_image"}, SEES_PRIVATE),
    ("compare", None, "GET", {"a": "board_image", "b": "board_image"}, SIGNED_IN),
    ("compare", None, "GET", {"a": "plan_image", "b": "plan_trashed_image"}, set()),
    # A trashed generation's every other door is shut, to its owner too, until restored.
    ("generation_detail", "plan_trashed", "GET", {}, set()),
    ("image_detail", "plan_trashed_image", "GET", {}, set()),
    ("image_original", "plan_trashed_image", "GET", {}, set()),
    ("image_thumbnail", "plan_trashed_image", "GET", {}, set()),
    ("image_display", "plan_trashed_image", "GET", {}, set()),
    ("image_download", "plan_trashed_image", "GET", {}, set()),
    ("generation_favourite", "plan_trashed", "POST", {"favourite": "1"}, set()),
    ("generation_delete", "plan_trashed", "POST", {}, set()),
    ("generation_move", "plan_trashed", "POST", {"gallery": "own gallery"}, set()),
]
# The board has a budget to clear (an owner's POST must change something).
BOARD_BUDGET = "7.5"

# Public by design for a live link's own gallery; everything else through them must 404.
SHARE_GALLERY_URLS = ["share_gallery", "share_zip"]
SHARE_IMAGE_URLS = [
    "share_image",
    "share_image_original",
    "share_image_thumbnail",
    "share_image_display",
    "share_image_download",
]
# What a live link's settings keep back (for a visitor who has not given its password,
# once its views are used, or where downloads are off).
DOWNLOADS = {"share_zip", "share_image_original", "share_image_download"}


@pytest.fixture
def people(alice, bob):
    return {
        "owner": alice,
        "contributor": bob,
        "viewer": make_user("carol"),
        "outsider": make_user("dave"),
        "removed": make_user("erin"),
        "anonymous": None,
    }


@pytest.fixture
def world(people):
    alice, bob, carol, erin = (people[k] for k in ("owner", "contributor", "viewer", "removed"))
    plans = Gallery.objects.create(owner=alice, name="Studio plans")
    plans.add_member(bob, "contributor", added_by=alice)
    plans.add_member(carol, "viewer", added_by=alice)
    erin_membership = plans.add_member(erin, "contributor", added_by=alice)
    board = Gallery.objects.create(
        owner=alice,
        name="Open board",
        visibility=Gallery.Visibility.TEAM,
        monthly_budget=BOARD_BUDGET,
    )
    plan = make_generation(alice, gallery=plans, prompt="Alice's secret plan", images=1)
    bobs = make_generation(bob, gallery=plans, prompt="Bob's sketch", images=1)
    erins = make_generation(erin, gallery=plans, prompt="Erin's draft", images=1)
    board_done = make_generation(alice, gallery=board, prompt="For everyone", images=1)
    objects = {
        "plans": plans,
        "board": board,
        "plan": plan,
        "plan_image": plan.images.get(),
        "plan_failed": make_generation(alice, gallery=plans, images=0, status=S.FAILED),
        "plan_queued": make_generation(alice, gallery=plans, images=0, status=S.IN_QUEUE),
        "bobs": bobs,
        "bobs_image": bobs.images.get(),
        "bobs_failed": make_generation(bob, gallery=plans, images=0, status=S.FAILED),
        "bobs_queued": make_generation(bob, gallery=plans, images=0, status=S.IN_QUEUE),
        "erins": erins,
        "erins_image": erins.images.get(),
        "erins_failed": make_generation(erin, gallery=plans, images=0, status=S.FAILED),
        "board_done": board_done,
        "board_image": board_done.images.get(),
        "bob_membership": plans.members.get(user=bob),
        "carol_membership": plans.members.get(user=carol),
        "plans_link": ShareLink.objects.create(gallery=plans),
        "alice_token": ApiToken.objects.create(user=alice, name="Alice's script"),
    }
    # In the trash: Alice's, Bob's, and Erin's from when she contributed.
    trashed = {
        "plan_trashed": make_generation(alice, gallery=plans, prompt="Alice's binned plan"),
        "bobs_trashed": make_generation(bob, gallery=plans, prompt="Bob's binned sketch"),
        "erins_trashed": make_generation(erin, gallery=plans, prompt="Erin's binned draft"),
    }
    Generation.objects.filter(pk__in=[g.pk for g in trashed.values()]).move_to_trash()
    objects |= trashed
    objects |= {f"{name}_image": g.images.get() for name, g in trashed.items()}
    # Erin was a contributor; she is not any more.
    erin_membership.delete()
    now = timezone.now()
    unfinished = make_generation(alice, gallery=board, images=1)
    Generation.objects.filter(pk=unfinished.pk).update(status=S.DOWNLOADING)
    objects |= {
        "revoked": ShareLink.objects.create(gallery=plans, revoked_at=now),
        "expired": ShareLink.objects.create(gallery=plans, expires_at=now - timedelta(hours=1)),
        "live_elsewhere": ShareLink.objects.create(gallery=board),
        "unfinished_image": unfinished.images.get(),
        "locked": ShareLink.objects.create(gallery=plans, password=make_password("open sesame")),
        "used_up": ShareLink.objects.create(gallery=plans, max_views=2, view_count=2),
        "no_downloads": ShareLink.objects.create(gallery=plans, allow_downloads=False),
    }
    return objects


def snapshot(media_root):
    rows = {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Gallery, GalleryMember, Generation, Image, ShareLink, Favourite)
    }
    # A token noting when it was last used is no change of what it may do.
    rows["ApiToken"] = list(ApiToken.objects.order_by("pk").values("pk", "access", "revoked_at"))
    files = sorted(str(p.relative_to(media_root)) for p in Path(media_root).rglob("*"))
    return rows, files


def requests_of(world, user):
    """(label, method, url, data, allowed actors) for every row, for `user`."""
    for name, target, method, data, allowed in ROWS:
        targets = () if target is None else target if isinstance(target, tuple) else (target,)
        url = reverse(name, args=[world[t].pk for t in targets])
        filled = {}
        for key, value in data.items():
            if value == "own gallery":
                value = Gallery.default_for(user).pk if user else 0
            filled[key] = world[value].pk if value in world else value
        yield f"{name} {target}", method, url, filled, allowed


def ask(client, method, url, data, **headers):
    return getattr(client, method.lower())(url, data, **headers)


def refused(response, actor):
    if actor == "anonymous":
        location = response.headers.get("Location", "")
        return response.status_code == 302 and location.startswith("/accounts/login/?next=")
    return response.status_code == 404


def client_for(client, user):
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("actor", ACTORS)
def test_each_person_gets_exactly_what_their_role_allows(client, people, world, media_root, actor):
    user = people[actor]
    client = client_for(client, user)
    wrong = []
    for label, method, url, data, allowed in requests_of(world, user):
        with transaction.atomic():  # each request meets the world as it was set up
            before = snapshot(media_root)
            response = ask(client, method, url, data)
            changed = snapshot(media_root) != before
            transaction.set_rollback(True)
        if actor in allowed:
            answered = response.status_code in (200, 204) or (
                response.status_code == 302 and "/accounts/login/" not in response["Location"]
            )
            if not answered or (method == "POST") != changed:
                wrong.append((label, "should be allowed", response.status_code, changed))
        elif not refused(response, actor) or changed:
            wrong.append((label, "should be refused", response.status_code, changed))
    assert wrong == []


@pytest.mark.parametrize("actor", ACTORS)
def test_refusals_hold_with_htmx_and_with_the_other_method(
    client, people, world, media_root, actor
):
    user = people[actor]
    client = client_for(client, user)
    before = snapshot(media_root)
    wrong = []
    for label, method, url, data, allowed in requests_of(world, user):
        if actor in allowed:
            continue
        response = ask(client, method, url, data, HTTP_HX_REQUEST="true")
        if not refused(response, actor):
            wrong.append((f"{label} htmx", response.status_code))
        other = "GET" if method == "POST" else "POST"
        response = ask(client, other, url, data)
        if response.status_code not in (404, 405) and not refused(response, actor):
            wrong.append((f"{label} {other}", response.status_code))
    assert wrong == []
    assert snapshot(media_root) == before


def share_requests(world):
    """Every way a share URL could be misused, with the answer it must get: ended links
    (410), images a link doesn't hold, and what a live link's settings keep back (404)."""
    image = world["plan_image"].pk
    for name in SHARE_GALLERY_URLS:
        for link in ("revoked", "expired"):
            yield f"{name} ({link})", reverse(name, args=[world[link].token]), 410
        yield f"{name} (made-up token)", reverse(name, args=["x" * 43]), 404
        yield f"{name} (used up)", reverse(name, args=[world["used_up"].token]), 404
        if name in DOWNLOADS:
            for link in ("locked", "no_downloads"):
                yield f"{name} ({link})", reverse(name, args=[world[link].token]), 404
    for name in SHARE_IMAGE_URLS:
        for link in ("revoked", "expired"):
            yield f"{name} ({link})", reverse(name, args=[world[link].token, image]), 410
        live = world["live_elsewhere"].token
        yield f"{name} (other gallery)", reverse(name, args=[live, image]), 404
        unfinished = world["unfinished_image"].pk
        yield f"{name} (unfinished)", reverse(name, args=[live, unfinished]), 404
        # In the trash: gone for a visitor with the gallery's live link (issue 20).
        trashed = world["plan_trashed_image"].pk
        plans_link = world["plans_link"].token
        yield f"{name} (trashed)", reverse(name, args=[plans_link, trashed]), 404
        yield f"{name} (used up)", reverse(name, args=[world["used_up"].token, image]), 404
        if name != "share_image":  # the page itself answers with the password form
            yield f"{name} (locked)", reverse(name, args=[world["locked"].token, image]), 404
        if name in DOWNLOADS:
            no_downloads = world["no_downloads"].token
            yield f"{name} (no downloads)", reverse(name, args=[no_downloads, image]), 404


@pytest.mark.parametrize("actor", ["outsider", "anonymous"])
def test_share_urls_serve_nothing_a_link_does_not_hold(client, people, world, media_root, actor):
    client = client_for(client, people[actor])
    before = snapshot(media_root)
    answers = [
        (label, client.get(url).status_code, expected)
        for label, url, expected in share_requests(world)
    ]
    assert [answer for answer in answers if answer[1] != answer[2]] == []
    assert snapshot(media_root) == before


def test_a_protected_link_shows_only_its_password_form_until_it_is_given(client, world):
    locked = world["locked"]
    for url in (
        reverse("share_gallery", args=[locked.token]),
        reverse("share_image", args=[locked.token, world["plan_image"].pk]),
    ):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 200
        assert 'name="password"' in html
        assert "Studio plans" not in html and "secret plan" not in html
        for kind in ("thumbnail", "display", "original", "download"):
            assert f"/{kind}/" not in html, (url, kind)


def page(client, url):
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


@pytest.mark.parametrize("actor", ["outsider", "removed"])
def test_listing_pages_show_nothing_of_a_private_gallery_to_those_outside_it(
    client, people, world, actor
):
    client = client_for(client, people[actor])
    plans = world["plans"]
    assert client.get(f"/?gallery={plans.pk}").status_code == 404  # the gallery's page
    for url in ("/", "/galleries/", "/team/", "/trash/"):
        html = page(client, url)
        for secret in ("Studio plans", "Alice&#x27;s secret plan", "Bob&#x27;s sketch", "binned"):
            assert secret not in html, (url, secret)
        assert "Erin&#x27;s draft" not in html, url  # Erin's own work left with the gallery
        assert f"/media/images/{world['plan_image'].pk}/" not in html, url
    # The gallery open to the team is on the Team page for them.
    assert "Open board" in page(client, "/team/")


# What each person's Trash page lists, and what emptying it deletes: what they may remove.
TRASH_OF = {
    "owner": {"plan_trashed", "bobs_trashed", "erins_trashed"},
    "contributor": {"bobs_trashed"},
    "viewer": set(),
    "outsider": set(),
    "removed": set(),  # Erin's own, in a gallery she no longer adds to: the owner's now
}
BINNED = {
    "plan_trashed": "Alice&#x27;s binned plan",
    "bobs_trashed": "Bob&#x27;s binned sketch",
    "erins_trashed": "Erin&#x27;s binned draft",
}


@pytest.mark.parametrize("actor", sorted(TRASH_OF))
def test_the_trash_page_lists_only_what_each_person_may_remove(client, people, world, actor):
    html = page(client_for(client, people[actor]), "/trash/")
    assert {name for name, prompt in BINNED.items() if prompt in html} == TRASH_OF[actor]


@pytest.mark.parametrize("actor", ACTORS)
def test_emptying_the_trash_deletes_only_what_each_person_may_remove(client, people, world, actor):
    response = client_for(client, people[actor]).post("/trash/empty/")
    if actor == "anonymous":
        assert refused(response, actor)
    left = set(Generation.objects.trashed().values_list("pk", flat=True))
    expected_gone = TRASH_OF.get(actor, set())
    assert left == {world[name].pk for name in BINNED if name not in expected_gone}


def test_members_see_the_private_gallery_among_those_shared_with_them(client, people, world):
    for actor in ("contributor", "viewer"):
        client.force_login(people[actor])
        html = page(client, "/galleries/")
        assert "Studio plans" in html
        html = page(client, f"/?gallery={world['plans'].pk}")
        assert "Alice&#x27;s secret plan" in html and "Bob&#x27;s sketch" in html


def generate(client, gallery, prompt):
    data = {"prompt": prompt, "image_size": "1024x1024", "background": "auto"}
    data |= {"quality": "low", "num_images": 1, "output_format": "png", "gallery": gallery.pk}
    return client.post("/generate/", data)


@pytest.mark.parametrize(
    ("actor", "gallery", "allowed"),
    [
        ("owner", "plans", True),
        ("contributor", "plans", True),
        ("viewer", "plans", False),
        ("outsider", "board", False),
        ("outsider", "plans", False),
        ("removed", "plans", False),
    ],
)
def test_only_the_owner_and_contributors_generate_into_a_gallery(
    client, people, world, monkeypatch, actor, gallery, allowed
):
    from gallery import tasks

    monkeypatch.setattr(tasks, "enqueue_submit", lambda generation: None)
    client.force_login(people[actor])
    generate(client, world[gallery], "Into the gallery")
    made = world[gallery].generations.filter(prompt="Into the gallery")
    assert made.exists() is allowed
    if allowed:
        assert made.get().owner == people[actor]  # it counts against who asked


def test_every_url_that_takes_an_object_is_in_the_walk():
    def names(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace != "admin":
                    inner = f"{pattern.namespace}:" if pattern.namespace else namespace
                    yield from names(pattern.url_patterns, inner)
            elif isinstance(pattern, URLPattern) and pattern.name:
                yield namespace + pattern.name, bool(pattern.pattern.converters)

    # Rows without a target post their objects (`g`) to a URL that names none.
    walked = {row[0] for row in ROWS if row[1] is not None}
    walked |= set(SHARE_GALLERY_URLS) | set(SHARE_IMAGE_URLS)
    walked |= set(IDENTITY_URLS) | set(API_URLS)
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


# -- usage (issue 18): the Usage page and the ledger's CSV ------------------------------------
# They take no object: what each person reads is the ledger's rule. Alice owns both
# galleries, so she reads what everyone spent in them; Bob and Erin read their own lines;
# Carol and Dave spent nothing and read nothing of anyone's; anonymous: the sign-in page.

USAGE_URLS = ["/usage/", "/usage/entries.csv"]
CSV_LINES_SEEN = {
    "owner": {"alice", "bob", "erin"},  # her own, and everyone's spend in her galleries
    "contributor": {"bob"},
    "viewer": set(),
    "outsider": set(),
    "removed": {"erin"},  # her own spend stays hers to read
}


def csv_people(response):
    lines = b"".join(response.streaming_content).decode().splitlines()[1:]
    return {line.split(",")[3] for line in lines}


@pytest.mark.parametrize("actor", ACTORS)
def test_usage_shows_each_person_only_the_spend_they_may_read(client, people, world, actor):
    client = client_for(client, people[actor])
    if actor == "anonymous":
        for url in USAGE_URLS:
            assert refused(client.get(url), actor), url
        return
    assert csv_people(client.get("/usage/entries.csv")) == CSV_LINES_SEEN[actor]
    html = page(client, "/usage/")
    assert ("Studio plans" in html) is (actor == "owner")
    assert "Everyone ·" not in html  # the per-person table is for staff


def test_staff_read_everyones_usage(client, staff, world):
    client.force_login(staff)
    assert csv_people(client.get("/usage/entries.csv")) == {"alice", "bob", "erin"}
    html = page(client, "/usage/")
    assert "Everyone ·" in html and "Studio plans" in html


# -- the API (issue 21): personal tokens instead of a session ---------------------------------
# Each person of the world calls with a token of their own; Alice also with a read-only
# token and a revoked one, and someone calls with none. A token acts as its owner: what they
# may see and change, as the rows above. Without a live token: 401; a read-only token on a
# call that would spend or change: 403; what the token's owner may not see (or change): 404.
# Nothing changes in the database or the media folder unless the answer says it did.

API_URLS = [
    "api:generation",
    "api:generation_cancel",
    "api:generation_retry",
    "api:image_original",
    "openai_image_file",
]
API_ACTORS = [*SIGNED_IN, "no token", "revoked", "read-only"]
WRITES = {"POST"}
# (method, path with {object} placeholders, JSON body, who may, the refusal a person gets).
API_ROWS = [
    ("GET", "/api/generations/{plan}", None, SEES_PRIVATE, 404),
    ("GET", "/api/generations/{board_done}", None, SIGNED_IN, 404),
    ("GET", "/api/generations?gallery={plans}", None, SEES_PRIVATE, 404),
    ("GET", "/api/images/{plan_image}/original", None, SEES_PRIVATE, 404),
    ("GET", "/api/images/{board_image}/original", None, SIGNED_IN, 404),
    ("POST", "/api/generations/{plan_queued}/cancel", None, {"owner"}, 404),
    ("POST", "/api/generations/{bobs_queued}/cancel", None, {"contributor"}, 404),
    ("POST", "/api/generations/{plan_failed}/retry", None, {"owner"}, 404),
    ("POST", "/api/generations/{bobs_failed}/retry", None, {"contributor"}, 404),
    ("POST", "/api/generations/{erins_failed}/retry", None, set(), 404),
    # Into a gallery: the form refuses one the caller may not add to (400, as on the page).
    (
        "POST",
        "/api/generations",
        {"prompt": "x", "gallery": "{plans}"},
        {"owner", "contributor"},
        400,
    ),
    ("POST", "/api/generations", {"prompt": "x", "gallery": "{board}"}, {"owner"}, 400),
    (
        "POST",
        "/v1/images/generations",
        {"prompt": "x", "gallery": "{plans}"},
        {"owner", "contributor"},
        400,
    ),
]


@pytest.fixture
def api_world(people, world, monkeypatch):
    from gallery import changes, tasks

    # Nothing is sent (the pipeline isn't running), and the OpenAI-compatible endpoint
    # answers at once rather than wait for a pipeline that isn't there.
    monkeypatch.setattr(tasks, "enqueue_submit", lambda generation: None)
    monkeypatch.setattr(changes, "wait_until_finished", lambda pks, **waiting: [])
    tokens = {
        actor: ApiToken.objects.create(user=user, name="script").token
        for actor, user in people.items()
        if user is not None
    }
    tokens["read-only"] = ApiToken.objects.create(
        user=people["owner"], name="reader", access=ApiToken.Access.READ
    ).token
    revoked = ApiToken.objects.create(user=people["owner"], name="old")
    revoked.revoke()
    tokens["revoked"] = revoked.token
    return tokens


def api_request(client, world, token, method, path, body):
    import json

    path = path.format(**{name: getattr(thing, "pk", "") for name, thing in world.items()})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "GET":
        return client.get(path, headers=headers)
    filled = {
        k: int(v.format(**{n: getattr(t, "pk", "") for n, t in world.items()}))
        if isinstance(v, str) and v.startswith("{")
        else v
        for k, v in (body or {}).items()
    }
    return client.post(path, json.dumps(filled), content_type="application/json", headers=headers)


@pytest.mark.parametrize("actor", API_ACTORS)
def test_each_token_gets_exactly_what_its_owner_may(client, world, api_world, media_root, actor):
    token = api_world.get(actor)
    acts_as = "owner" if actor == "read-only" else actor
    wrong = []
    for method, path, body, allowed, refusal in API_ROWS:
        with transaction.atomic():
            before = snapshot(media_root)
            response = api_request(client, world, token, method, path, body)
            changed = snapshot(media_root) != before
            transaction.set_rollback(True)
        if actor in ("no token", "revoked"):
            expected = 401
        elif actor == "read-only" and method in WRITES:
            expected = 403
        elif acts_as in allowed:
            expected = None  # a real answer
        else:
            expected = refusal
        if expected is None:
            # A create the endpoint waits on answers 409 here (the stand-in finds it gone).
            ok = response.status_code in (200, 202) or path.startswith("/v1/")
            if not ok or (method == "POST") != changed:
                wrong.append((path, "should be allowed", response.status_code, changed))
        elif response.status_code != expected or changed:
            wrong.append((path, f"should be {expected}", response.status_code, changed))
    assert wrong == []


def test_a_signed_image_link_that_was_forged_or_expired_serves_nothing(
    client, world, api_world, settings
):
    from django.urls import reverse

    from gallery.api.openai import signed_url

    plan = world["plan"]
    plan.api_token = ApiToken.objects.get(name="script", user=plan.owner)
    url = signed_url(world["plan_image"], plan)
    assert client.get(url).status_code == 200  # a link is enough, as the openai package needs
    value = url.rstrip("/").rsplit("/", 1)[1]
    forged = value.replace('"image":', '"image": ')  # any change breaks the signature
    assert client.get(reverse("openai_image_file", args=[forged + "x"])).status_code == 404
    settings.OPENAI_IMAGE_URL_SECONDS = -1
    assert client.get(url).status_code == 404
