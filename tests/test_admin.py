"""Operators' admin: finding generations, fixing failures, revoking links, staying fast."""

import io
import re
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image as PILImage

from gallery.models import Gallery, Generation, Image, Quota, ShareLink, UsageEntry
from tests.conftest import make_user

S = Generation.Status
CHANGELIST = "/admin/gallery/generation/"


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def make_generation(owner, **fields):
    """A generation row in any status; one past PENDING (but FAILED) was sent, so the usage
    ledger has its entry, as the claim would have written."""
    fields = {"prompt": "a lighthouse at dusk", "quality": "low", **fields}
    generation = Generation.objects.create(
        owner=owner, gallery=Gallery.default_for(owner), **fields
    )
    if generation.status not in (S.PENDING, S.FAILED):
        UsageEntry.record_spends([generation])
    return generation


def webp_bytes(size):
    buffer = io.BytesIO()
    PILImage.new("RGB", size, "teal").save(buffer, "WEBP")
    return buffer.getvalue()


def make_image(generation, index=0):
    stem = f"{generation.file_folder()}/{index}"
    original = default_storage.save(f"{stem}.webp", ContentFile(webp_bytes((64, 64))))
    thumbnail = default_storage.save(f"{stem}-thumb.webp", ContentFile(webp_bytes((32, 32))))
    return Image.objects.create(
        generation=generation,
        index=index,
        original=original,
        thumbnail=thumbnail,
        width=64,
        height=64,
        content_type="image/webp",
        size_bytes=default_storage.size(original),
    )


def run_action(client, url, action, objects):
    return client.post(
        url, {"action": action, "_selected_action": [obj.pk for obj in objects]}, follow=True
    )


# -- finding --------------------------------------------------------------------------------


def test_staff_finds_a_generation_by_its_provider_request_id(staff_client, alice, bob):
    wanted = make_generation(
        alice, prompt="wanted: harbour at night", status=S.FAILED, request_id="req-7f3a9c2e"
    )
    make_generation(bob, prompt="other: a meadow", request_id="req-11111111")

    response = staff_client.get(CHANGELIST, {"q": "req-7f3a9c2e"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [wanted]
    assert "wanted: harbour at night" in response.text
    assert "other: a meadow" not in response.text


def test_staff_finds_generations_by_owner_email_and_prompt(staff_client, alice, bob):
    mine = make_generation(alice, prompt="a copper kettle")
    make_generation(bob, prompt="a glass teapot")

    by_email = staff_client.get(CHANGELIST, {"q": "alice@example.com"}).context["cl"]
    by_prompt = staff_client.get(CHANGELIST, {"q": "copper"}).context["cl"]

    assert list(by_email.result_list) == [mine]
    assert list(by_prompt.result_list) == [mine]


def test_the_list_filters_by_status_quality_size_and_format(staff_client, alice):
    wanted = make_generation(
        alice, status=S.FAILED, quality="high", image_size="1536x1024", output_format="webp"
    )
    make_generation(alice, status=S.FAILED, quality="low")
    make_generation(alice, status=S.COMPLETED, quality="high")

    response = staff_client.get(
        CHANGELIST,
        {
            "status__exact": "FAILED",
            "quality__exact": "high",
            "image_size__exact": "1536x1024",
            "output_format__exact": "webp",
        },
    )

    assert list(response.context["cl"].result_list) == [wanted]


def test_the_list_shows_what_operators_need(staff_client, alice):
    generation = make_generation(
        alice,
        prompt="three foxes in snow",
        status=S.COMPLETED,
        quality="high",
        image_size="1024x1536",
        num_images=3,
        processing_time_ms=12_345,
    )
    image = make_image(generation)
    make_generation(alice, prompt="a failed attempt", status=S.FAILED, num_images=4)

    html = staff_client.get(CHANGELIST).text

    assert f'src="/admin/gallery/image/{image.pk}/thumbnail/"' in html
    assert '<span class="dr-badge dr-badge--ok">Completed</span>' in html
    assert '<span class="dr-badge dr-badge--danger">Failed</span>' in html
    assert "1 of 3" in html  # images stored of asked for
    assert "12.3 s" in html
    assert "$0.600" in html  # 3 × high portrait at 0.200
    assert "alice" in html


def test_the_generation_page_shows_the_provider_answer_read_only(staff_client, alice):
    generation = make_generation(
        alice,
        status=S.COMPLETED,
        request_id="req-42",
        provider_metadata={"seed": 1234, "model": "gpt-image-1.5"},
        submit_count=1,
    )
    make_image(generation)

    response = staff_client.get(f"{CHANGELIST}{generation.pk}/change/")

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.fields) == []  # all read-only: favourites are each person's own
    assert "req-42" in response.text
    assert "&quot;seed&quot;: 1234" in response.text
    assert "64×64" in response.text  # the images inline


def test_generations_are_never_added_from_admin(staff_client):
    assert staff_client.get(f"{CHANGELIST}add/").status_code == 403


# -- fixing ---------------------------------------------------------------------------------


def test_the_retry_action_requeues_a_failed_generation_and_it_completes(
    pipeline, staff_client, alice
):
    generation = make_generation(
        alice,
        prompt="a kite that failed the first time",
        status=S.FAILED,
        error="The gateway is busy",
        failed_at=timezone.now(),
        request_id="req-old",
    )
    response = run_action(staff_client, CHANGELIST, "retry_generations", [generation])

    assert "1 generation re-queued." in response.text
    pipeline.wait_until_finished([generation])
    assert generation.status == S.COMPLETED, generation.error
    assert generation.request_id not in ("", "req-old")
    assert generation.images.count() == 1
    assert pipeline.simulator.submissions == 1


def test_the_retry_action_skips_generations_that_have_not_failed(staff_client, alice):
    done = make_generation(alice, status=S.COMPLETED)
    failed = make_generation(alice, status=S.FAILED)

    response = run_action(staff_client, CHANGELIST, "retry_generations", [done, failed])

    assert "1 generation re-queued." in response.text
    assert "1 skipped: only failed or cancelled ones retry." in response.text
    done.refresh_from_db()
    failed.refresh_from_db()
    assert (done.status, failed.status) == (S.COMPLETED, S.PENDING)


def test_the_cancel_action_cancels_unfinished_generations_only(staff_client, alice):
    queued = make_generation(alice, status=S.IN_QUEUE, request_id="req-1")
    pending = make_generation(alice, status=S.PENDING)
    done = make_generation(alice, status=S.COMPLETED)

    response = run_action(staff_client, CHANGELIST, "cancel_generations", [queued, pending, done])

    assert "2 generations cancelled." in response.text
    assert "1 skipped" in response.text
    statuses = dict(Generation.objects.values_list("pk", "status"))
    assert statuses == {queued.pk: S.CANCELLED, pending.pk: S.CANCELLED, done.pk: S.COMPLETED}


def test_the_revoke_action_revokes_share_links(staff_client, alice):
    gallery = Gallery.default_for(alice)
    live = ShareLink.objects.create(gallery=gallery, label="for the client")
    other = ShareLink.objects.create(gallery=gallery, label="for the printer")

    response = run_action(staff_client, "/admin/gallery/sharelink/", "revoke_links", [live])

    assert "1 share link revoked." in response.text
    live.refresh_from_db()
    other.refresh_from_db()
    assert not live.is_live
    assert other.is_live


def test_a_share_links_settings_show_in_admin_without_its_password(staff_client, alice):
    gallery = Gallery.default_for(alice)
    link = ShareLink(gallery=gallery, label="for the printer", max_views=3, view_count=3)
    link.set_password("hunter2-correct-horse")
    link.allow_downloads = False
    link.save()

    listing = staff_client.get("/admin/gallery/sharelink/").text
    page = staff_client.get(f"/admin/gallery/sharelink/{link.pk}/change/").text

    assert "Used up" in listing
    assert "3 of 3" in listing
    fresh = ShareLink.objects.create(gallery=gallery, label="for the client")
    used_up = staff_client.get("/admin/gallery/sharelink/?state=used_up").text
    live = staff_client.get("/admin/gallery/sharelink/?state=live").text
    assert "for the printer" in used_up and fresh.label not in used_up
    assert fresh.label in live and "for the printer" not in live
    assert 'name="max_views" value="3"' in page
    assert '<input type="checkbox" name="allow_downloads" id="id_allow_downloads">' in page
    assert 'name="show_prompts" id="id_show_prompts" checked>' in page
    assert re.search(r"Password:</label>\s*<div class=\"readonly\"><img[^>]*alt=\"True\"", page)
    assert link.password not in page
    assert "hunter2" not in page


# -- staying fast ---------------------------------------------------------------------------


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_the_generation_list_makes_as_many_queries_for_1000_rows_as_for_10(staff_client, alice):
    for n in range(10):
        make_image(make_generation(alice, prompt=f"study {n}", status=S.COMPLETED))
    few = count_queries(staff_client, CHANGELIST)

    gallery = Gallery.default_for(alice)
    Generation.objects.bulk_create(
        Generation(owner=alice, gallery=gallery, prompt=f"more {n}", status=S.COMPLETED)
        for n in range(990)
    )
    assert Generation.objects.count() == 1000
    many = count_queries(staff_client, CHANGELIST)

    assert many == few


@pytest.mark.parametrize(
    "url",
    [
        "/admin/gallery/image/",
        "/admin/gallery/gallery/",
        "/admin/gallery/sharelink/",
        "/admin/gallery/quota/",
        "/admin/auth/user/",
    ],
)
def test_other_lists_make_as_many_queries_for_many_rows_as_for_few(staff_client, alice, bob, url):
    def add_rows(owner, count):
        for n in range(count):
            generation = make_generation(owner, num_images=2, status=S.COMPLETED)
            make_image(generation)
            gallery = Gallery.objects.create(owner=owner, name=f"{owner} {url} {n}")
            ShareLink.objects.create(gallery=gallery)

    add_rows(alice, 2)
    Quota.objects.create(user=alice, monthly_images=10)
    few = count_queries(staff_client, url)
    add_rows(bob, 20)
    Quota.objects.create(user=bob, monthly_images=10)
    many = count_queries(staff_client, url)

    assert many == few


# -- usage and quotas -----------------------------------------------------------------------


def test_the_people_list_shows_this_months_usage_and_quota(staff_client, alice):
    done = make_generation(alice, quality="medium", num_images=2, status=S.COMPLETED)
    Quota.objects.create(user=alice, monthly_images=50)
    done.delete()  # what was spent stays spent: the column reads the ledger

    response = staff_client.get("/admin/auth/user/", {"q": "alice"})

    row = next(u for u in response.context["cl"].result_list if u.username == "alice")
    assert (row.images_this_month, row.cost_this_month) == (2, Decimal("0.068"))
    assert "$0.068" in response.text
    assert ">50<" in response.text


def test_an_operator_sets_a_quota_on_the_person_page(staff_client, alice):
    page = staff_client.get(f"/admin/auth/user/{alice.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields if name != "password"}
    data.update(
        {
            "date_joined_0": alice.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": alice.date_joined.strftime("%H:%M:%S"),
            "last_login_0": "",
            "last_login_1": "",
            "groups": [],
            "user_permissions": [],
            "quota-TOTAL_FORMS": "1",
            "quota-INITIAL_FORMS": "0",
            "quota-MIN_NUM_FORMS": "0",
            "quota-MAX_NUM_FORMS": "1",
            "quota-0-monthly_images": "25",
            "quota-0-user": str(alice.pk),
        }
    )
    data = {key: value for key, value in data.items() if value is not None}
    data["is_active"] = "on"

    response = staff_client.post(f"/admin/auth/user/{alice.pk}/change/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Quota.objects.get(user=alice).monthly_images == 25


# -- thumbnails, django-q2, secrets ---------------------------------------------------------


def test_staff_see_any_owners_thumbnail(staff_client, alice):
    image = make_image(make_generation(alice, status=S.COMPLETED))

    response = staff_client.get(f"/admin/gallery/image/{image.pk}/thumbnail/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert b"".join(response.streaming_content) == image.thumbnail.open("rb").read()


def test_people_who_are_not_staff_get_no_admin_thumbnail(alice_client, alice):
    image = make_image(make_generation(alice, status=S.COMPLETED))

    response = alice_client.get(f"/admin/gallery/image/{image.pk}/thumbnail/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_without_the_image_permission_get_no_admin_thumbnail(client, alice):
    image = make_image(make_generation(alice, status=S.COMPLETED))
    client.force_login(
        get_user_model().objects.create_user("helpdesk", "helpdesk@example.com", is_staff=True)
    )

    assert client.get(f"/admin/gallery/image/{image.pk}/thumbnail/").status_code == 403


def test_the_image_page_names_its_files_without_linking_to_unserved_media(staff_client, alice):
    image = make_image(make_generation(alice, status=S.COMPLETED))

    html = staff_client.get(f"/admin/gallery/image/{image.pk}/change/").text

    assert image.original.name in html
    assert image.thumbnail.name in html
    assert 'href="/media/' not in html


def test_a_missing_thumbnail_file_is_a_404(staff_client, alice):
    image = make_image(make_generation(alice, status=S.COMPLETED))
    default_storage.delete(image.thumbnail.name)

    assert staff_client.get(f"/admin/gallery/image/{image.pk}/thumbnail/").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/admin/django_q/ormq/",  # queued
        "/admin/django_q/success/",
        "/admin/django_q/failure/",
        "/admin/django_q/schedule/",
    ],
)
def test_staff_open_the_background_task_pages(staff_client, url):
    response = staff_client.get(url)
    assert response.status_code == 200


def test_the_admin_index_links_the_background_task_pages(staff_client):
    html = staff_client.get("/admin/").text
    for url in ("/admin/django_q/success/", "/admin/django_q/failure/", "/admin/django_q/ormq/"):
        assert f'href="{url}"' in html


def test_the_api_key_never_appears_in_admin(staff_client, alice, settings):
    marker = "pixazo-secret-key-do-not-show-8c1f"
    settings.PIXAZO_API_KEY = marker
    generation = make_generation(
        alice, status=S.COMPLETED, request_id="req-1", provider_metadata={"seed": 1}
    )
    image = make_image(generation)
    link = ShareLink.objects.create(gallery=generation.gallery)
    Quota.objects.create(user=alice, monthly_images=3)
    urls = [
        "/admin/",
        CHANGELIST,
        f"{CHANGELIST}{generation.pk}/change/",
        "/admin/gallery/image/",
        f"/admin/gallery/image/{image.pk}/change/",
        "/admin/gallery/gallery/",
        f"/admin/gallery/gallery/{generation.gallery_id}/change/",
        "/admin/gallery/sharelink/",
        f"/admin/gallery/sharelink/{link.pk}/change/",
        "/admin/gallery/quota/",
        "/admin/auth/user/",
        f"/admin/auth/user/{alice.pk}/change/",
        "/admin/django_q/schedule/",
        "/admin/django_q/ormq/",
        "/admin/django_q/success/",
        "/admin/django_q/failure/",
    ]
    for url in urls:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert marker not in response.text, url


def test_share_link_tokens_are_not_shown(staff_client, alice):
    link = ShareLink.objects.create(gallery=Gallery.default_for(alice), label="for the client")

    assert link.token not in staff_client.get("/admin/gallery/sharelink/").text
    assert link.token not in staff_client.get(f"/admin/gallery/sharelink/{link.pk}/change/").text


def test_a_gallery_shows_its_members_inline_and_galleries_filter_by_visibility(
    staff_client, alice, bob
):
    open_board = Gallery.objects.create(owner=alice, name="Open board", visibility="team")
    open_board.add_member(bob, "contributor", added_by=alice)
    Gallery.objects.create(owner=alice, name="Quiet drafts")

    page = staff_client.get(f"/admin/gallery/gallery/{open_board.pk}/change/").text
    assert "Gallery members" in page
    assert 'value="contributor" selected' in page
    listed = staff_client.get("/admin/gallery/gallery/?visibility__exact=team").text
    assert "Open board" in listed and "Quiet drafts" not in listed


# -- permissions ----------------------------------------------------------------------------


@pytest.fixture
def viewer_staff(db):
    """Staff who may look at everything in admin and change nothing."""
    from django.contrib.auth.models import Permission

    viewer = make_user("auditor", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    return viewer


def test_a_view_only_staff_account_gets_no_admin_action_anywhere(rf, viewer_staff):
    from django.contrib import admin as django_admin

    offered = {}
    for model, model_admin in django_admin.site._registry.items():
        request = rf.get("/admin/")
        request.user = viewer_staff
        if actions := model_admin.get_actions(request):
            offered[model.__name__] = list(actions)
    assert offered == {}


def test_a_view_only_staff_account_cannot_run_an_action_by_posting_it(client, viewer_staff, alice):
    failed = make_generation(alice, status=S.FAILED)
    client.force_login(viewer_staff)

    response = run_action(client, CHANGELIST, "retry_generations", [failed])

    assert response.status_code == 200
    failed.refresh_from_db()
    assert failed.status == S.FAILED


def test_an_operators_retry_is_held_to_the_owners_quota(staff_client, alice):
    Quota.objects.create(user=alice, monthly_images=1)
    make_generation(alice, status=S.COMPLETED)
    cancelled = make_generation(alice, status=S.CANCELLED)

    response = run_action(staff_client, CHANGELIST, "retry_generations", [cancelled])

    assert "0 generations re-queued." in response.text
    assert "Not retried. alice: This request needs 1 image, and your monthly quota has" in (
        response.text.replace("&#x27;", "'")
    )
    cancelled.refresh_from_db()
    assert cancelled.status == S.CANCELLED


def test_the_usage_ledger_is_read_only_in_admin(staff_client, alice):
    make_generation(alice, status=S.COMPLETED)
    entry = UsageEntry.objects.get()

    assert staff_client.get("/admin/gallery/usageentry/").status_code == 200
    change = staff_client.post(f"/admin/gallery/usageentry/{entry.pk}/change/", {"images": 0})
    assert change.status_code == 403
    assert staff_client.post(f"/admin/gallery/usageentry/{entry.pk}/delete/").status_code == 403
    assert UsageEntry.objects.get().images == 1


def test_staff_set_the_team_budget_in_admin_without_a_restart(staff_client):
    from gallery import spend
    from gallery.models import TeamBudget

    response = staff_client.post("/admin/gallery/teambudget/add/", {"monthly_budget": "25"})

    assert response.status_code == 302
    assert TeamBudget.current() == Decimal(25)
    assert staff_client.get("/admin/gallery/teambudget/add/").status_code == 403  # one row
    alice = make_user("ada")
    (team,) = spend.limits_for(alice, Gallery.default_for(alice))
    assert team.label == "the team's monthly budget"


# -- django-q2's Scheduled tasks: a schedule runs any function, so superusers only ----------


@pytest.fixture
def scheduler_staff(client, db):
    """Staff who hold every permission on schedules, but are no superuser."""
    from django.contrib.auth.models import Permission

    helpdesk = get_user_model().objects.create_user("helpdesk", "hd@example.com", is_staff=True)
    helpdesk.user_permissions.set(Permission.objects.filter(content_type__app_label="django_q"))
    client.force_login(helpdesk)
    return client


def test_other_staff_see_schedules_read_only_and_can_add_change_or_delete_none(scheduler_staff):
    from django_q.models import Schedule

    watchdog = Schedule.objects.get(name="darkroom-watchdog")
    schedules = list(Schedule.objects.order_by("pk").values_list("pk", "func"))
    listed = scheduler_staff.get("/admin/django_q/schedule/")
    assert listed.status_code == 200 and watchdog.func in listed.text
    page = scheduler_staff.get(f"/admin/django_q/schedule/{watchdog.pk}/change/")
    assert page.status_code == 200
    assert 'name="func"' not in page.text and 'name="_save"' not in page.text

    attack = {"name": "x", "func": "os.system", "args": "'touch /tmp/owned'", "schedule_type": "O"}
    assert scheduler_staff.post("/admin/django_q/schedule/add/", attack).status_code == 403
    change = f"/admin/django_q/schedule/{watchdog.pk}/change/"
    assert scheduler_staff.post(change, {**attack, "repeats": -1}).status_code == 403
    delete = f"/admin/django_q/schedule/{watchdog.pk}/delete/"
    assert scheduler_staff.post(delete, {"post": "yes"}).status_code == 403
    assert list(Schedule.objects.order_by("pk").values_list("pk", "func")) == schedules


def test_superusers_manage_schedules(staff_client):
    from django_q.models import Schedule

    add = staff_client.get("/admin/django_q/schedule/add/")
    assert add.status_code == 200 and 'name="func"' in add.text
    watchdog = Schedule.objects.get(name="darkroom-watchdog")
    delete = f"/admin/django_q/schedule/{watchdog.pk}/delete/"
    assert staff_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Schedule.objects.filter(pk=watchdog.pk).exists()
