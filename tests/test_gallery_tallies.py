"""A gallery's counts (Gallery.kept_generations, shown_images) are kept as generations come,
finish, move, go to the trash and come back, so the Galleries and Team pages read them
rather than count a large gallery's rows on every view. Each test checks the tallies
against a count of the rows (what the pages counted before), and what the page says."""

import pytest
from django.utils import timezone

from gallery import bulk, spend
from gallery.models import Gallery, Generation, Image, Role
from tests.image_factories import make_generation
from tests.test_generation_rules import fetched_png, make

S = Generation.Status


def counted(gallery):
    """What the tallies should say, counted from the rows."""
    kept = Generation.objects.kept().filter(gallery=gallery)
    shown = Image.objects.shown().filter(generation__gallery=gallery)
    return kept.count(), shown.count()


def tallies(gallery):
    gallery.refresh_from_db()
    return gallery.kept_generations, gallery.shown_images


def assert_right(*galleries):
    for gallery in galleries:
        assert tallies(gallery) == counted(gallery), gallery.name


@pytest.fixture
def campaign(alice):
    return Gallery.objects.create(owner=alice, name="Campaign")


def test_a_generate_counts_at_once_and_its_images_once_stored(alice, media_root):
    generation = make(alice, num_images=2)  # the Generate form's own path
    home = generation.gallery
    assert tallies(home) == (1, 0)

    Generation.objects.filter(pk=generation.pk).update(status=S.DOWNLOADING)
    generation.refresh_from_db()
    assert generation.store_images([fetched_png(), fetched_png()])

    assert tallies(home) == (1, 2) == counted(home)


def test_trash_and_restore_take_a_generation_and_its_images_out_and_back(alice, media_root):
    kept = make_generation(alice, images=3)
    other = make_generation(alice, images=1)
    home = kept.gallery
    assert tallies(home) == (2, 4)

    Generation.objects.filter(pk=kept.pk).move_to_trash()
    assert tallies(home) == (1, 1)
    Generation.objects.filter(pk=kept.pk).restore()
    assert tallies(home) == (2, 4)
    Generation.objects.filter(pk=other.pk).move_to_trash()
    Generation.objects.filter(pk=other.pk).delete_forever()
    assert tallies(home) == (1, 3)
    assert_right(home)


def test_moves_one_at_a_time_and_in_bulk_leave_both_galleries_right(alice, campaign, media_root):
    done = [make_generation(alice, images=2) for _ in range(3)]
    waiting = make(alice)  # PENDING: moved through spend.move with its reservation
    home = waiting.gallery
    assert tallies(home) == (4, 6)

    spend.move(waiting, campaign)
    assert tallies(home) == (3, 6)
    assert tallies(campaign) == (1, 0)

    outcome = bulk.move(
        Generation.objects.cards_for(alice).filter(pk__in=[g.pk for g in done[:2]]), campaign
    )
    assert len(outcome.done) == 2
    assert tallies(home) == (1, 2)
    assert tallies(campaign) == (3, 4)
    assert_right(home, campaign)


def test_deleting_a_gallery_hands_its_counts_to_where_its_images_go(alice, campaign, media_root):
    make_generation(alice, gallery=campaign, images=2)
    make_generation(alice, gallery=campaign, images=1)
    home = Gallery.default_for(alice)
    make_generation(alice, images=1)

    campaign.remove(keep_images=True)

    assert tallies(home) == (3, 4) == counted(home)


def test_deleting_a_gallery_with_its_images_sends_them_to_the_trash_uncounted(
    alice, campaign, media_root
):
    make_generation(alice, gallery=campaign, images=2)
    home = Gallery.default_for(alice)

    campaign.remove(keep_images=False)

    assert tallies(home) == (0, 0) == counted(home)


def test_rows_an_operator_deletes_or_adds_by_hand_are_counted(alice, media_root):
    first = make_generation(alice, images=2)
    second = make_generation(alice, images=1)
    home = first.gallery

    first.images.first().delete()  # one image removed by hand
    assert tallies(home) == (2, 2)
    Image.objects.filter(generation=second).delete()  # a queryset of them
    assert tallies(home) == (2, 1)
    second.delete()  # as admin's delete does
    assert tallies(home) == (1, 1)
    assert_right(home)


def test_a_failed_or_unfinished_generation_counts_as_kept_but_shows_no_image(alice, media_root):
    make_generation(alice, status=S.FAILED, images=0)
    pending = make(alice)
    assert tallies(pending.gallery) == (2, 0) == counted(pending.gallery)


def test_the_daily_task_puts_a_tally_that_went_wrong_right(alice, media_root):
    from gallery.tasks import empty_expired_trash

    generation = make_generation(alice, images=2)
    home = generation.gallery
    Gallery.objects.filter(pk=home.pk).update(kept_generations=40, shown_images=0)

    empty_expired_trash()

    assert tallies(home) == (1, 2)


def test_the_galleries_and_team_pages_show_the_tallies(
    alice, bob, alice_client, campaign, media_root
):
    make_generation(alice, gallery=campaign, images=3)
    trashed = make_generation(alice, gallery=campaign, images=2)
    Generation.objects.filter(pk=trashed.pk).move_to_trash()
    campaign.add_member(bob, Role.VIEWER.value, added_by=alice)

    page = alice_client.get("/galleries/").content.decode()
    assert "3 images · 1 generation" in page
    team = alice_client.get("/team/").content.decode()
    assert "3 images · 1 generation" in team


def test_the_upgrade_counts_every_gallery_that_exists(alice, media_root):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("gallery.migrations.0018_gallery_tallies")
    make_generation(alice, images=2)
    trashed = make_generation(alice, images=1)
    Generation.objects.filter(pk=trashed.pk).update(trashed_at=timezone.now())
    home = Gallery.default_for(alice)
    Gallery.objects.update(kept_generations=0, shown_images=0)  # as before the upgrade

    migration.count_every_gallery(apps, None)

    assert tallies(home) == (1, 2)
