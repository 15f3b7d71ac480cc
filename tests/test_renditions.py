"""Display renditions (models/renditions.py): what pages show of an image instead of its
original, made in the worker just after the images are stored, and for older images by a
command."""

import io
import secrets
from concurrent.futures import Future

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_q.models import OrmQ
from PIL import Image as PillowImage

from gallery import imaging, tasks
from gallery.models import DisplayRendition, Gallery, Lease, ShareLink, display_of
from tests.image_factories import make_generation, picture_bytes


def test_a_display_rendition_is_a_webp_no_longer_than_its_display_size():
    wide = imaging.make_display(picture_bytes(1536, 1024))
    assert (wide.width, wide.height) == (1280, 853)
    with PillowImage.open(io.BytesIO(wide.data)) as made:
        assert (made.format, made.size) == ("WEBP", (1280, 853))
    small = imaging.make_display(picture_bytes(300, 200))  # never made larger
    assert (small.width, small.height) == (300, 200)


def test_a_transparent_image_keeps_its_transparency():
    buffer = io.BytesIO()
    PillowImage.new("RGBA", (1024, 1024), (0, 0, 0, 0)).save(buffer, "PNG")
    rendition = imaging.make_display(buffer.getvalue())
    with PillowImage.open(io.BytesIO(rendition.data)) as made:
        assert made.mode == "RGBA"


@pytest.mark.django_db
def test_the_command_makes_the_renditions_older_images_lack_once(alice, client, capsys):
    old = make_generation(alice, images=2, display=False)
    new = make_generation(alice, images=1)
    (before_new,) = DisplayRendition.objects.filter(image__generation=new)

    call_command("make_display_renditions")

    assert "Made 2 display renditions of 2 images without one." in capsys.readouterr().out
    for image in old.images.select_related("display"):
        display = display_of(image)
        assert (display.width, display.height) == (96, 64)
        assert display.file.name.startswith(old.file_folder())
        with default_storage.open(display.file.name) as f:
            assert PillowImage.open(f).format == "WEBP"
    assert DisplayRendition.objects.get(image__generation=new) == before_new

    call_command("make_display_renditions")  # again: nothing left to do
    assert "Made 0 display renditions of 0 images" in capsys.readouterr().out
    assert DisplayRendition.objects.count() == 3


@pytest.mark.django_db
def test_an_image_whose_original_is_missing_is_named_and_skipped(alice, capsys):
    generation = make_generation(alice, images=2, display=False)
    lost, kept = generation.images.order_by("index")
    default_storage.delete(lost.original.name)

    call_command("make_display_renditions")

    output = capsys.readouterr()
    assert f"image {lost.pk}" in output.err
    assert "Made 1 display rendition of 2 images without one; skipped 1" in output.out
    assert display_of(kept) is not None


@pytest.mark.django_db
def test_deleting_an_image_deletes_its_display_file(alice, django_capture_on_commit_callbacks):
    image = make_generation(alice, images=1).images.get()
    name = image.display.file.name
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        image.generation.delete()
    assert not default_storage.exists(name)


@pytest.mark.postgres  # the migration on both databases
@pytest.mark.django_db(transaction=True)
def test_a_link_made_before_tokens_were_hashed_still_opens(client):
    executor = MigrationExecutor(connection)
    before = [("gallery", "0007_throttles")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    owner = old_apps.get_model("auth", "User").objects.create(username="old-timer")
    gallery = old_apps.get_model("gallery", "Gallery").objects.create(
        owner=owner, name="From before"
    )
    token = secrets.token_urlsafe(24)  # how links were made then
    old_apps.get_model("gallery", "ShareLink").objects.create(gallery=gallery, token=token)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    response = client.get(f"/s/{token}/")
    assert response.status_code == 200
    assert "From before" in response.content.decode()
    link = ShareLink.objects.get()
    assert link.token_prefix == token[:8] and token not in link.token_hash
    assert ShareLink.objects.with_token(token) == link
    assert Gallery.objects.get(pk=gallery.pk).name == "From before"


# -- made by the worker, after the images are stored ------------------------------------------


@pytest.mark.django_db
def test_the_worker_makes_display_renditions_only_while_no_download_runs_or_waits(alice):
    generation = make_generation(alice, images=2, display=False)
    pks = list(generation.images.values_list("pk", flat=True))
    poller = tasks.Poller(0, "poller-0", "a test", displays=pks)

    poller.downloads = {generation.pk + 1: Future()}  # someone's images are on their way
    poller._make_displays()
    assert not DisplayRendition.objects.exists()

    poller.downloads = {}
    poller._make_displays()
    made = DisplayRendition.objects.filter(image__in=pks)
    assert made.count() == 2 and not poller.displays
    for display in made:
        with display.file.open("rb") as file, PillowImage.open(file) as picture:
            assert (picture.format, picture.size) == ("WEBP", (96, 64))


@pytest.mark.django_db
def test_a_poller_that_hands_over_leaves_the_display_renditions_it_did_not_make_to_its_successor(
    alice,
):
    generation = make_generation(alice, images=2, display=False)
    pks = list(generation.images.values_list("pk", flat=True))
    poller = tasks.Poller(0, "poller-0", "a test", displays=pks)
    poller.handing_over = True
    poller._make_displays()
    assert not DisplayRendition.objects.exists()

    tasks._hand_over(0, poller.displays)
    (successor,) = OrmQ.objects.all()
    assert successor.kwargs() == {"shard": 0, "displays": pks}


@pytest.mark.django_db
def test_an_image_gone_or_unreadable_before_its_display_rendition_is_skipped(alice, caplog):
    generation = make_generation(alice, images=2, display=False)
    first, second = generation.images.order_by("index")
    default_storage.delete(first.original.name)
    gone = second.pk
    second.delete()

    tasks.make_display(first.pk)
    tasks.make_display(gone)

    assert not DisplayRendition.objects.exists()
    assert f"image {first.pk}: no display rendition" in caplog.text


@pytest.mark.django_db
def test_display_renditions_handed_to_a_poller_that_finds_its_shard_taken_are_made_anyway(alice):
    generation = make_generation(alice, images=1, display=False)
    (image,) = generation.images.all()
    Lease.acquire(tasks.POLLER_LEASE.format(shard=0), "the running poller", 60)

    assert tasks.run_poller(shard=0, displays=[image.pk]) == "another poller holds the lease"
    assert DisplayRendition.objects.filter(image=image).exists()
