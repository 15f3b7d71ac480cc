"""The trash (issue 20): deleting hides a generation everywhere but the Trash page, Undo and
Restore bring it back, and TRASH_DAYS later the daily schedule deletes it and its files.
What was spent stays counted throughout."""

import io
import zipfile
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from gallery import spend, tasks
from gallery.models import Gallery, Generation, ShareLink, UsageEntry, UsageTotal
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def files_of(generation):
    return [
        name
        for image in generation.images.all()
        for name in (image.original.name, image.thumbnail.name, image.display.file.name)
    ]


def zip_names(response):
    body = b"".join(response.streaming_content)
    return zipfile.ZipFile(io.BytesIO(body)).namelist()


def test_a_trashed_image_is_gone_for_a_visitor_with_a_live_link_and_back_on_restore(
    client, alice, alice_client
):
    gallery = Gallery.objects.create(owner=alice, name="Campaign")
    kept = make_generation(alice, gallery=gallery, prompt="A kept kite")
    binned = make_generation(alice, gallery=gallery, prompt="A binned boat")
    link = ShareLink.objects.create(gallery=gallery)
    image = binned.images.get()
    urls = [
        f"/s/{link.token}/images/{image.pk}/",
        f"/s/{link.token}/images/{image.pk}/original/",
        f"/s/{link.token}/images/{image.pk}/thumbnail/",
        f"/s/{link.token}/images/{image.pk}/display/",
        f"/s/{link.token}/images/{image.pk}/download/",
    ]

    def seen_by_visitor():
        answers = {url: client.get(url).status_code for url in urls}
        page = client.get(f"/s/{link.token}/").content.decode()
        entries = zip_names(client.get(f"/s/{link.token}/download.zip"))
        return answers, "A binned boat" in page, any("binned" in name for name in entries)

    assert seen_by_visitor() == ({url: 200 for url in urls}, True, True)

    alice_client.post(f"/generations/{binned.pk}/delete/")

    assert seen_by_visitor() == ({url: 404 for url in urls}, False, False)
    assert "A kept kite" in client.get(f"/s/{link.token}/").content.decode()
    # Its owner's own doors are shut too: studio, detail page, files, the gallery's zip.
    assert alice_client.get(f"/images/{image.pk}/").status_code == 404
    assert alice_client.get(f"/media/images/{image.pk}/original/").status_code == 404
    assert "A binned boat" not in alice_client.get(f"/?gallery={gallery.pk}").content.decode()
    assert len(zip_names(alice_client.get(f"/galleries/{gallery.pk}/download.zip"))) == 1
    assert kept.images.exists()

    alice_client.post("/trash/restore/", {"g": binned.pk})

    assert seen_by_visitor() == ({url: 200 for url in urls}, True, True)


def test_trash_restore_and_delete_forever_leave_the_ledger_as_it_was(
    alice, alice_client, django_capture_on_commit_callbacks
):
    generations = [make_generation(alice, images=2) for _ in range(3)]
    Generation.objects.filter(pk=generations[0].pk).update(quality="low")

    def ledger():
        entries = list(UsageEntry.objects.order_by("pk").values_list("kind", "images", "cost"))
        totals = list(UsageTotal.objects.order_by("pk").values_list("scope", "images", "cost"))
        usage = spend.monthly_usage(alice)
        return entries, totals, usage.images, usage.cost

    before = ledger()
    assert before[2] == 6

    for generation in generations:
        alice_client.post(f"/generations/{generation.pk}/delete/")
    assert Generation.objects.trashed().count() == 3
    assert ledger() == before
    alice_client.post("/trash/restore/", {"g": generations[0].pk})
    assert ledger() == before
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post("/trash/delete/", {"g": generations[1].pk})
        alice_client.post("/trash/empty/")
    assert list(Generation.objects.values_list("pk", flat=True)) == [generations[0].pk]
    assert ledger() == before
    assert "<strong>6</strong> images" in alice_client.get("/").content.decode()


def test_the_daily_schedule_removes_what_expired_with_its_files(
    alice, settings, django_capture_on_commit_callbacks
):
    from django_q.models import Schedule

    settings.TRASH_DAYS = 30
    expired = make_generation(alice, images=2)
    recent = make_generation(alice, images=1)
    kept = make_generation(alice, images=1)
    now = timezone.now()
    Generation.objects.filter(pk=expired.pk).move_to_trash(now - timedelta(days=30, minutes=1))
    Generation.objects.filter(pk=recent.pk).move_to_trash(now - timedelta(days=29))
    expired_files, other_files = files_of(expired), files_of(recent) + files_of(kept)
    assert all(default_storage.exists(name) for name in expired_files)

    schedule = Schedule.objects.get(name="darkroom-empty-trash")
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (
        "gallery.tasks.empty_expired_trash",
        Schedule.DAILY,
        -1,
    )
    with django_capture_on_commit_callbacks(execute=True):
        tasks.empty_expired_trash()
        tasks.empty_expired_trash()  # a second run finds nothing more

    assert set(Generation.objects.values_list("pk", flat=True)) == {recent.pk, kept.pk}
    assert not any(default_storage.exists(name) for name in expired_files)
    assert all(default_storage.exists(name) for name in other_files)


def test_the_trash_page_says_when_each_goes_for_good(alice, alice_client, settings):
    settings.TRASH_DAYS = 30
    generation = make_generation(alice, prompt="A lighthouse in fog")
    trashed_at = timezone.now() - timedelta(days=2)
    Generation.objects.filter(pk=generation.pk).move_to_trash(trashed_at)
    html = alice_client.get("/trash/").content.decode()
    removed = timezone.localtime(trashed_at + timedelta(days=30))
    assert "A lighthouse in fog" in html
    assert f'Removed for good on <time datetime="{removed.isoformat()}">' in html
    image = generation.images.get()
    assert f'src="/media/trash/{image.pk}/thumbnail/"' in html
    assert alice_client.get(f"/media/trash/{image.pk}/thumbnail/").status_code == 200
    assert 'action="/trash/restore/"' in html and 'action="/trash/delete/"' in html
    assert 'href="/trash/"' in html  # the header links to it


def test_an_unfinished_generation_is_not_trashed(alice, alice_client):
    running = make_generation(alice, images=0, status=Generation.Status.IN_PROGRESS)
    assert alice_client.post(f"/generations/{running.pk}/delete/").status_code == 409
    assert Generation.objects.filter(pk=running.pk).move_to_trash() == 0
    running.refresh_from_db()
    assert not running.is_trashed


def test_trashed_images_leave_the_galleries_counts_and_the_team_page(alice, bob, client):
    board = Gallery.objects.create(owner=alice, name="Board", visibility=Gallery.Visibility.TEAM)
    make_generation(alice, gallery=board, prompt="Still here")
    binned = make_generation(alice, gallery=board, prompt="Binned one", images=2)
    Generation.objects.filter(pk=binned.pk).move_to_trash()
    client.force_login(bob)
    team = client.get("/team/").content.decode()
    assert "Still here" in team and "Binned one" not in team
    assert f"/media/images/{binned.images.first().pk}/" not in team
    client.force_login(alice)
    galleries = client.get("/galleries/").content.decode()
    assert "1 image" in galleries and "3 images" not in galleries
