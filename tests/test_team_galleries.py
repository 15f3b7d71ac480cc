"""Team galleries: members and roles, visibility to the team, the Team page, personal
favourites and usage, and access that ends the moment someone is removed."""

import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext

from gallery import spend
from gallery.models import Gallery, GalleryMember, Generation, Role
from tests.conftest import make_user
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def carol(db):
    return make_user("carol")


@pytest.fixture
def bob_client(bob):
    """Bob's own browser, beside alice_client."""
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def plans(alice):
    return Gallery.objects.create(owner=alice, name="Launch plans")


def add(client, gallery, member, role="viewer", **headers):
    return client.post(
        f"/galleries/{gallery.pk}/members/", {"member": member, "role": role}, **headers
    )


def text(response):
    return re.sub(r"\s+", " ", response.content.decode())


# -- adding, changing and removing members --------------------------------------------------


def test_the_owner_adds_a_teammate_by_username_or_email(alice_client, plans, bob, carol):
    add(alice_client, plans, "BOB", role="contributor")
    add(alice_client, plans, "carol@example.com")
    roles = dict(plans.members.values_list("user__username", "role"))
    assert roles == {"bob": "contributor", "carol": "viewer"}
    assert plans.members.get(user=bob).added_by.username == "alice"


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("zed", "No teammate here goes by “zed”."),
        ("alice", "That&#x27;s you: you own this gallery already."),
        ("bob", "bob is already a viewer of this gallery."),
        ("", "Name the person to add: their username or e-mail."),
        # An inactive account answers as an unknown one: nothing says who exists.
        ("frozen", "No teammate here goes by “frozen”."),
    ],
)
def test_adding_someone_who_cannot_be_added_is_a_clear_error_and_changes_nothing(
    alice_client, plans, bob, member, message
):
    plans.add_member(bob, "viewer", added_by=plans.owner)
    make_user("frozen", is_active=False)
    response = add(alice_client, plans, member, role="contributor", **HTMX)
    assert message in response.content.decode()
    assert list(plans.members.values_list("user__username", "role")) == [("bob", "viewer")]


def test_someone_waiting_for_approval_is_not_in_the_team_yet(alice_client, plans, client):
    from gallery.models import AccountApproval

    newcomer = make_user("nina")
    AccountApproval.record_arrival(newcomer, AccountApproval.Source.SIGNUP, approved=False)
    plans.visibility = "team"
    plans.save()
    # The same answer as for someone unknown or inactive: nothing says the account exists.
    answers = [text(add(alice_client, plans, name, **HTMX)) for name in ("nina", "nobody")]
    assert "No teammate here goes by “nina”." in answers[0]
    assert "No teammate here goes by “nobody”." in answers[1]
    assert not any("approval" in answer or "waiting" in answer for answer in answers)
    assert not plans.members.exists()

    waiting = Client()
    waiting.force_login(newcomer)
    assert waiting.get(f"/?gallery={plans.pk}").status_code == 404  # not open to them yet
    assert "Launch plans" not in waiting.get("/team/").content.decode()
    AccountApproval.approve([newcomer])
    assert waiting.get(f"/?gallery={plans.pk}").status_code == 200


def test_an_address_two_accounts_share_asks_for_a_username(alice_client, plans):
    make_user("sam")
    make_user("samantha").__class__.objects.filter(username="samantha").update(
        email="sam@example.com"
    )
    response = add(alice_client, plans, "sam@example.com", **HTMX)
    assert "More than one teammate uses" in response.content.decode()
    assert not plans.members.exists()


def test_adding_with_htmx_answers_the_card_with_the_members_panel_open(alice_client, plans, bob):
    response = add(alice_client, plans, "bob", role="contributor", **HTMX)
    html = text(response)
    assert html.lstrip().startswith(f'<article class="gallery-card" id="gallery-{plans.pk}"')
    assert re.search(r'<details class="gallery-panel" open>\s*<summary>Members', html)
    member = plans.members.get()
    assert f'action="/members/{member.pk}/remove/"' in html
    assert '<option value="contributor" selected>Contributor</option>' in html
    assert "shared with 1 person" in html


def test_adding_without_javascript_redirects_with_a_message(alice_client, plans, bob):
    response = add(alice_client, plans, "bob", follow=True)
    assert response.redirect_chain == [(f"/galleries/#gallery-{plans.pk}", 302)]
    assert "bob can now see “Launch plans” as a viewer." in response.content.decode()


def test_the_owner_changes_a_role_and_removes_a_member(alice_client, plans, bob):
    member = plans.add_member(bob, "viewer", added_by=plans.owner)
    alice_client.post(f"/members/{member.pk}/role/", {"role": "contributor"}, **HTMX)
    member.refresh_from_db()
    assert member.role == "contributor"
    alice_client.post(f"/members/{member.pk}/role/", {"role": "owner"}, **HTMX)  # not a role
    member.refresh_from_db()
    assert member.role == "contributor"

    alice_client.post(f"/members/{member.pk}/remove/", **HTMX)
    assert not GalleryMember.objects.exists()


def test_a_member_leaves(client, plans, bob):
    plans.add_member(bob, "contributor", added_by=plans.owner)
    client.force_login(bob)
    response = client.post(f"/galleries/{plans.pk}/leave/", follow=True)
    assert "You left “Launch plans”." in response.content.decode()
    assert not plans.members.exists()
    assert client.get(f"/?gallery={plans.pk}").status_code == 404


# -- what members see ----------------------------------------------------------------------


def test_galleries_page_lists_those_shared_with_me_with_owner_and_role(client, plans, bob):
    plans.add_member(bob, "contributor", added_by=plans.owner)
    make_generation(plans.owner, gallery=plans, images=2)
    client.force_login(bob)
    html = text(client.get("/galleries/"))
    shared = html[html.index("Shared with me") :]
    assert "Launch plans" in shared and "alice’s gallery" in shared
    assert '<span class="badge badge--info">Contributor</span>' in shared
    assert "2 images · 1 generation" in shared
    # Bob doesn't manage it: no rename, share links, members or delete for him.
    card = re.search(rf'<article class="gallery-card" id="gallery-{plans.pk}".*?</article>', html)
    for control in ("rename", "links/new", "members/", "delete"):
        assert f"/galleries/{plans.pk}/{control}" not in card.group()
    assert f'action="/galleries/{plans.pk}/leave/"' in card.group()


def test_a_shared_gallerys_page_shows_every_members_work_with_who_made_it(
    client, alice, plans, bob, carol
):
    plans.add_member(bob, "contributor", added_by=alice)
    plans.add_member(carol, "viewer", added_by=alice)
    make_generation(alice, gallery=plans, prompt="alice's plan")
    make_generation(bob, gallery=plans, prompt="bob's sketch")
    client.force_login(carol)
    html = text(client.get(f"/?gallery={plans.pk}"))
    assert "alice&#x27;s plan" in html and "bob&#x27;s sketch" in html
    assert html.count('class="card__maker"') == 2  # neither is carol's
    assert "by bob" in html and "by alice" in html
    assert "alice’s gallery · you’re a viewer" in html


def test_the_studio_offers_the_galleries_i_may_generate_into_and_filters_every_one_i_see(
    client, alice, plans, bob, carol
):
    plans.add_member(bob, "contributor", added_by=alice)
    viewing = Gallery.objects.create(owner=carol, name="Carol's moodboard")
    viewing.add_member(bob, "viewer", added_by=carol)
    board = Gallery.objects.create(owner=carol, name="Open board", visibility="team")
    client.force_login(bob)
    html = client.get("/").content.decode()
    form_select = re.search(r'<select name="gallery" id="id_gallery".*?</select>', html, re.S)
    filter_select = re.search(r'<select name="gallery" id="filter-gallery".*?</select>', html, re.S)
    assert f'<option value="{plans.pk}">Launch plans · alice</option>' in form_select.group()
    assert "Carol&#x27;s moodboard" not in form_select.group()
    assert "Open board" not in form_select.group()
    for gallery in (plans, viewing, board):
        assert f'<option value="{gallery.pk}">' in filter_select.group()


def test_one_may_generate_into_ones_own_galleries_and_those_one_contributes_to_only(
    alice, plans, bob, carol
):
    plans.add_member(bob, "contributor", added_by=alice)
    viewing = Gallery.objects.create(owner=carol, name="Carol's moodboard")
    viewing.add_member(bob, "viewer", added_by=carol)
    Gallery.objects.create(owner=carol, name="Open board", visibility="team")
    Gallery.objects.create(owner=carol, name="Carol's own")
    own = Gallery.default_for(bob)
    editable = {gallery.pk: gallery.role for gallery in Gallery.objects.editable_by(bob)}
    assert editable == {own.pk: Role.OWNER, plans.pk: Role.CONTRIBUTOR}


def test_a_contributor_generates_into_the_gallery_and_it_counts_against_them(
    client, alice, plans, bob, monkeypatch
):
    from gallery import tasks

    monkeypatch.setattr(tasks, "enqueue_submit", lambda generation: None)
    plans.add_member(bob, "contributor", added_by=alice)
    client.force_login(bob)
    data = {"prompt": "a poster", "image_size": "1024x1024", "background": "auto"}
    data |= {"quality": "high", "num_images": 3, "output_format": "png", "gallery": plans.pk}
    client.post("/generate/", data, **HTMX)

    generation = plans.generations.get()
    assert generation.owner == bob
    assert spend.monthly_usage(bob).images == 3
    assert spend.monthly_usage(alice).images == 0


def test_a_viewer_who_tries_to_generate_into_the_gallery_is_told_why_and_nothing_is_made(
    client, alice, plans, carol, monkeypatch
):
    from gallery import tasks

    sent = []
    monkeypatch.setattr(tasks, "enqueue_submit", sent.append)
    plans.add_member(carol, "viewer", added_by=alice)
    client.force_login(carol)
    data = {"prompt": "a poster", "image_size": "1024x1024", "background": "auto"}
    data |= {"quality": "high", "num_images": 1, "output_format": "png", "gallery": plans.pk}
    response = client.post("/generate/", data, **HTMX)
    assert "You can&#x27;t add images to that gallery." in response.content.decode()
    assert not Generation.objects.exists() and sent == []


def test_deleting_a_gallery_but_keeping_its_images_keeps_the_teams_work_with_the_owner(
    alice_client, alice, plans, bob
):
    plans.add_member(bob, "contributor", added_by=alice)
    bobs = make_generation(bob, gallery=plans)
    alice_client.post(f"/galleries/{plans.pk}/delete/", {"images": "keep"})
    bobs.refresh_from_db()
    assert bobs.gallery == Gallery.default_for(alice) and bobs.owner == bob
    assert not GalleryMember.objects.exists()


def test_an_account_whose_work_is_in_a_teammates_gallery_is_not_deleted_with_it(
    client, staff, alice, plans, bob
):
    plans.add_member(bob, "contributor", added_by=alice)
    bobs = make_generation(bob, gallery=plans)
    client.force_login(staff)
    page = client.get(f"/admin/auth/user/{bob.pk}/delete/")
    # Django admin names what stands in the way, and offers no "Yes, I'm sure".
    assert "would require deleting the following protected related objects" in text(page)
    assert bobs.prompt in text(page)
    client.post(f"/admin/auth/user/{bob.pk}/delete/", {"post": "yes"})
    bobs.refresh_from_db()
    assert bobs.owner == bob and bobs.images.get().original.storage.exists(
        bobs.images.get().original.name
    )


def test_deleting_an_account_takes_its_own_galleries_and_only_those(alice, plans, bob):
    plans.add_member(bob, "contributor", added_by=alice)
    alices_in_plans = make_generation(alice, gallery=plans)
    bobs_own = make_generation(bob)
    bob.delete()
    assert not Generation.objects.filter(pk=bobs_own.pk).exists()
    assert Generation.objects.filter(pk=alices_in_plans.pk).exists()
    assert not plans.members.exists()


def test_a_viewer_sees_no_controls_to_change_what_others_made(client, alice, plans, carol):
    plans.add_member(carol, "viewer", added_by=alice)
    failed = make_generation(alice, gallery=plans, images=0, status=Generation.Status.FAILED)
    client.force_login(carol)
    card = re.search(
        rf'<article id="generation-{failed.pk}".*?</article>',
        client.get(f"/?gallery={plans.pk}").content.decode(),
        re.S,
    ).group()
    assert "/retry/" not in card and "/delete/" not in card
    assert "/favourite/" in card  # her own star


def test_the_team_page_lists_galleries_shared_with_me_and_open_to_the_team(
    client, alice, plans, bob, carol
):
    plans.add_member(bob, "viewer", added_by=alice)
    board = Gallery.objects.create(owner=carol, name="Open board", visibility="team")
    make_generation(carol, gallery=board, prompt="first")
    newest = make_generation(carol, gallery=board, prompt="newest", images=2)
    Gallery.objects.create(owner=carol, name="Carol's private drafts")
    client.force_login(bob)
    html = text(client.get("/team/"))
    shared, open_to_team = html.split('id="team-open"')
    assert "Launch plans" in shared and "alice’s gallery" in shared
    assert "Open board" in open_to_team and "carol’s gallery" in open_to_team
    assert "Carol&#x27;s private drafts" not in html
    cover = newest.images.order_by("index").first()
    assert f'src="/media/images/{cover.pk}/thumbnail/"' in open_to_team
    # The cover, and its latest images: the newest generation's two, then the first's.
    assert open_to_team.count("/thumbnail/") == 4


def test_the_team_page_costs_the_same_queries_however_many_galleries(
    client, alice, bob, django_assert_max_num_queries
):
    client.force_login(bob)
    for n in range(8):
        gallery = Gallery.objects.create(owner=alice, name=f"Board {n}", visibility="team")
        gallery.add_member(bob, "viewer", added_by=alice) if n % 2 else None
        make_generation(alice, gallery=gallery, images=2)
    # session, user, and two lists each with their latest generations and images
    with django_assert_max_num_queries(8):
        assert client.get("/team/").status_code == 200


def test_the_galleries_page_costs_the_same_queries_however_many_members(
    alice_client, alice, bob, carol
):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get("/galleries/").status_code == 200
        return len(captured)

    first = Gallery.objects.create(owner=alice, name="One")
    first.add_member(bob, "viewer", added_by=alice)
    Gallery.objects.create(owner=bob, name="Bob's").add_member(alice, "viewer", added_by=bob)
    few = queries()
    for n in range(6):
        mate = make_user(f"mate{n}")
        first.add_member(mate, "contributor", added_by=alice)
        theirs = Gallery.objects.create(owner=mate, name=f"Theirs {n}")
        theirs.add_member(alice, "viewer", added_by=mate)
        Gallery.objects.create(owner=alice, name=f"Mine {n}").add_member(
            mate, "viewer", added_by=alice
        )
    assert queries() == few


# -- visibility ---------------------------------------------------------------------------


def test_opening_a_gallery_to_the_team_shows_it_to_everyone_signed_in_read_only(
    bob_client, alice_client, plans, bob
):
    image = make_generation(plans.owner, gallery=plans).images.get()
    assert bob_client.get(f"/media/images/{image.pk}/thumbnail/").status_code == 404

    alice_client.post(f"/galleries/{plans.pk}/visibility/", {"visibility": "team"}, **HTMX)
    plans.refresh_from_db()
    assert plans.visibility == "team"
    assert bob_client.get(f"/media/images/{image.pk}/thumbnail/").status_code == 200
    assert "Launch plans" in bob_client.get("/team/").content.decode()
    assert "team’s" not in text(bob_client.get(f"/?gallery={plans.pk}"))
    assert "seeing it because it is open to the team" in text(
        bob_client.get(f"/?gallery={plans.pk}")
    )

    alice_client.post(f"/galleries/{plans.pk}/visibility/", {"visibility": "private"}, **HTMX)
    assert bob_client.get(f"/media/images/{image.pk}/thumbnail/").status_code == 404
    assert bob_client.get(f"/?gallery={plans.pk}").status_code == 404


def test_an_unknown_visibility_is_refused(alice_client, plans):
    alice_client.post(f"/galleries/{plans.pk}/visibility/", {"visibility": "public"})
    plans.refresh_from_db()
    assert plans.visibility == "private"


def test_existing_and_new_galleries_start_private(alice_client, alice):
    alice_client.post("/galleries/new/", {"name": "Fresh"})
    assert set(Gallery.objects.values_list("visibility", flat=True)) == {"private"}


# -- removing someone cuts access at once --------------------------------------------------


def test_removing_a_member_ends_their_pages_files_zip_and_updates_at_once(
    bob_client, alice_client, plans, bob
):
    member = plans.add_member(bob, "contributor", added_by=plans.owner)
    image = make_generation(plans.owner, gallery=plans).images.get()
    bobs = make_generation(bob, gallery=plans, prompt="made by bob in alice's gallery")
    urls = [
        f"/?gallery={plans.pk}",
        f"/images/{image.pk}/",
        f"/media/images/{image.pk}/original/",
        f"/media/images/{image.pk}/thumbnail/",
        f"/galleries/{plans.pk}/download.zip",
        f"/generations/{bobs.pk}/",
    ]
    assert [bob_client.get(url).status_code for url in urls] == [200, 200, 200, 200, 200, 302]
    assert "made by bob" in bob_client.get("/").content.decode()
    revalidation = bob_client.get(urls[2], HTTP_IF_NONE_MATCH=bob_client.get(urls[2])["ETag"])
    assert revalidation.status_code == 304  # while access lasts, the browser's copy is fine

    alice_client.post(f"/members/{member.pk}/remove/")

    assert [bob_client.get(url).status_code for url in urls] == [404] * len(urls)
    assert bob_client.get(urls[2], HTTP_IF_NONE_MATCH=revalidation["ETag"]).status_code == 404
    # What Bob made there belongs to the gallery: it left his studio, his usage keeps it.
    assert "made by bob" not in bob_client.get("/").content.decode()
    assert spend.monthly_usage(bob).images == 1


def test_a_members_browser_asks_again_before_reusing_an_image_the_owners_keeps_it(
    bob_client, alice_client, plans, bob
):
    plans.add_member(bob, "viewer", added_by=plans.owner)
    image = make_generation(plans.owner, gallery=plans).images.get()
    assert bob_client.get(f"/media/images/{image.pk}/thumbnail/")["Cache-Control"] == (
        "private, no-cache"
    )
    owners = alice_client.get(f"/media/images/{image.pk}/thumbnail/")["Cache-Control"]
    assert owners == "private, max-age=3600"


# -- personal things stay personal ---------------------------------------------------------


def test_a_star_is_each_persons_own(bob_client, alice_client, alice, plans, bob):
    plans.add_member(bob, "viewer", added_by=alice)
    generation = make_generation(alice, gallery=plans, prompt="starred by bob only")
    bob_client.post(f"/generations/{generation.pk}/favourite/", {"favourite": "1"}, **HTMX)

    bobs_view = bob_client.get(f"/?gallery={plans.pk}&favourite=on").content.decode()
    assert "starred by bob only" in bobs_view
    alices_view = alice_client.get(f"/?gallery={plans.pk}&favourite=on").content.decode()
    assert "starred by bob only" not in alices_view
    card = re.search(
        rf'<article id="generation-{generation.pk}".*?</article>',
        alice_client.get(f"/?gallery={plans.pk}").content.decode(),
        re.S,
    ).group()
    assert 'aria-pressed="false"' in card


def test_a_new_generation_by_a_teammate_reaches_the_gallerys_open_page(
    alice_client, alice, plans, bob
):
    plans.add_member(bob, "contributor", added_by=alice)
    page = alice_client.get(f"/?gallery={plans.pk}").content.decode()
    live = re.search(r'<div id="live-updates"[^>]*>', page).group()
    assert "data-others-add" in live  # keeps asking: a contributor may add at any time
    anchor = re.search(r'data-anchor="(\d+)"', live).group(1)

    bobs = make_generation(bob, gallery=plans, status=Generation.Status.IN_QUEUE, prompt="bob's")
    response = alice_client.get(
        f"/updates/?gallery={plans.pk}&anchor={anchor}", HTTP_HX_REQUEST="true"
    )
    html = text(response)
    assert 'hx-swap-oob="afterbegin:#generation-grid"' in html
    assert f'<article id="generation-{bobs.pk}"' in html and "by bob" in html


def test_a_private_view_nobody_else_adds_to_stops_asking_once_nothing_is_unfinished(
    alice_client, plans
):
    for url in ("/", f"/?gallery={plans.pk}"):
        live = re.search(r'<div id="live-updates"[^>]*>', alice_client.get(url).content.decode())
        assert "data-others-add" not in live.group(), url


# -- the migration -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_each_favourite_as_its_owners_own_and_galleries_private():
    before = [("gallery", "0002_watchdog_schedule")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    User = old.get_model("auth", "User")
    OldGallery = old.get_model("gallery", "Gallery")
    OldGeneration = old.get_model("gallery", "Generation")
    owner = User.objects.create(username="olga")
    gallery = OldGallery.objects.create(owner=owner, name="Old favourites", is_default=True)
    starred = OldGeneration.objects.create(owner=owner, gallery=gallery, prompt="a", favourite=True)
    OldGeneration.objects.create(owner=owner, gallery=gallery, prompt="b", favourite=False)

    executor = MigrationExecutor(connection)
    executor.migrate(latest)

    assert list(Gallery.objects.values_list("visibility", flat=True)) == ["private"]
    favourites = list(
        Generation.objects.get(pk=starred.pk).favourites.values_list("user__username", flat=True)
    )
    assert favourites == ["olga"]
    assert Generation.objects.filter(favourites__isnull=False).count() == 1
