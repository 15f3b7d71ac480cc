"""The generation's state machine and the validation that guards the provider."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ

from gallery import tasks
from gallery.forms import GenerationForm
from gallery.imaging import FetchedImage
from gallery.models import Generation, IllegalTransition
from tests.image_factories import picture_bytes

S = Generation.Status
pytestmark = pytest.mark.django_db

VALID = {
    "prompt": "a lighthouse at dusk",
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "high",
    "num_images": 1,
    "output_format": "png",
}


def make(alice, **fields):
    form = GenerationForm({**VALID, **fields}, owner=alice)
    assert form.is_valid(), form.errors
    return form.save()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("prompt", "", "prompt can't be empty"),
        ("prompt", "   ", "prompt can't be empty"),
        ("prompt", "x" * 32_001, "at most 32000 characters"),
        ("image_size", "512x512", "Select a valid choice"),
        ("background", "checkerboard", "Select a valid choice"),
        ("quality", "ultra", "Select a valid choice"),
        ("output_format", "gif", "Select a valid choice"),
        ("num_images", 0, "Select a valid choice"),
        ("num_images", 5, "Select a valid choice"),
    ],
)
def test_invalid_parameters_are_refused_with_a_field_error_and_nothing_is_queued(
    alice, field, value, message
):
    form = GenerationForm({**VALID, field: value}, owner=alice)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field])
    assert not Generation.objects.exists()
    assert not OrmQ.objects.exists()


def test_a_transparent_jpeg_is_refused_because_jpeg_has_no_alpha(alice):
    form = GenerationForm(
        {**VALID, "background": "transparent", "output_format": "jpeg"}, owner=alice
    )
    assert not form.is_valid()
    assert "JPEG has no transparency" in form.errors["output_format"][0]


def test_the_longest_prompt_the_provider_takes_is_accepted(alice):
    assert make(alice, prompt="x" * 32_000).prompt == "x" * 32_000


def test_a_new_generation_lands_in_the_owners_default_gallery(alice):
    generation = make(alice)
    assert generation.status == S.PENDING
    assert generation.gallery.is_default and generation.gallery.owner == alice


def test_someone_elses_gallery_cannot_be_chosen(alice, bob):
    from gallery.models import Gallery

    form = GenerationForm({**VALID, "gallery": Gallery.default_for(bob).pk}, owner=alice)
    assert not form.is_valid()
    assert "gallery" in form.errors


def test_only_one_worker_can_claim_a_generation_for_submission(alice):
    generation = make(alice)
    stale_copy = Generation.objects.get(pk=generation.pk)
    assert generation.claim_for_submit()
    assert not stale_copy.claim_for_submit()
    assert Generation.objects.get(pk=generation.pk).status == S.SUBMITTING


def test_a_burst_is_claimed_together_and_a_row_moved_meanwhile_is_left_alone(alice):
    burst = [make(alice) for _ in range(5)]
    burst[1].cancel()
    burst[2].claim_for_submit()  # another claim got there first
    claimed = Generation.objects.filter(pk__in=[g.pk for g in burst]).claim_for_submit()

    assert sorted(g.pk for g in claimed) == sorted(g.pk for g in (burst[0], *burst[3:]))
    # As the single claim leaves its instance: the answer can be recorded on it.
    assert all(g.status == S.SUBMITTING and g.claimed_at for g in claimed)
    assert claimed[0].mark_submitted("opaque-id-b1")
    assert Generation.objects.get(pk=burst[1].pk).status == S.CANCELLED
    # The earlier claim still holds: its answer is the one that counts.
    assert burst[2].mark_submitted("opaque-id-b2")


def test_the_provider_accepting_it_counts_one_submission(alice):
    generation = make(alice)
    generation.claim_for_submit()
    assert generation.mark_submitted("opaque-id-g1h2")
    generation.refresh_from_db()
    assert (generation.status, generation.request_id, generation.submit_count) == (
        S.IN_QUEUE,
        "opaque-id-g1h2",
        1,
    )


@pytest.mark.parametrize(
    ("start", "move"),
    [
        (S.COMPLETED, "retry"),
        (S.COMPLETED, "cancel"),
        (S.DOWNLOADING, "cancel"),
        (S.PENDING, "complete"),
        (S.PENDING, "retry"),
        (S.FAILED, "cancel"),
    ],
)
def test_illegal_transitions_are_refused(alice, start, move):
    generation = make(alice)
    Generation.objects.filter(pk=generation.pk).update(status=start)
    generation.refresh_from_db()
    with pytest.raises(IllegalTransition):
        getattr(generation, move)()
    assert Generation.objects.get(pk=generation.pk).status == start


def test_failing_a_finished_generation_is_refused(alice):
    generation = make(alice)
    Generation.objects.filter(pk=generation.pk).update(status=S.COMPLETED)
    generation.refresh_from_db()
    with pytest.raises(IllegalTransition):
        generation.fail("too late")


def test_a_cancel_that_lost_the_race_changes_nothing(alice):
    generation = make(alice)
    other = Generation.objects.get(pk=generation.pk)
    assert other.claim_for_submit() and other.mark_submitted("r1")
    # This copy still thinks it is PENDING: its cancel must not overwrite IN_QUEUE blindly.
    assert not generation.cancel()
    assert Generation.objects.get(pk=generation.pk).status == S.IN_QUEUE


def test_retry_starts_over_with_a_clean_slate(alice):
    generation = make(alice)
    generation.claim_for_submit()
    generation.mark_submitted("r1")
    generation.fail("The provider could not make this image: nope")
    assert generation.retry()
    generation.refresh_from_db()
    assert generation.status == S.PENDING
    assert (generation.request_id, generation.error, generation.failed_at) == ("", "", None)


def test_a_submitter_whose_claim_was_replaced_changes_nothing(alice):
    generation = make(alice)
    assert generation.claim_for_submit()
    first_submitter = Generation.objects.get(pk=generation.pk)
    # Cancelled and retried while the first submit was still waiting on the gateway.
    assert generation.cancel() and generation.retry() and generation.claim_for_submit()

    assert not first_submitter.defer_submit("The gateway is busy", 5)
    assert not first_submitter.mark_submitted("from-the-first-submit")
    assert generation.mark_submitted("from-the-second-submit")
    generation.refresh_from_db()
    assert (generation.status, generation.request_id) == (S.IN_QUEUE, "from-the-second-submit")


def test_a_deferred_submit_falls_due_its_delay_after_the_answer_however_long_the_lock_took(
    alice, monkeypatch
):
    # The poller looks for the resend exactly when the gateway's Retry-After ends: a row
    # due later than that (counted from when a burst's writers let go of the lock) would
    # miss that look and wait for the next tick.
    generation = make(alice)
    generation.claim_for_submit()
    clock = [timezone.now()]
    monkeypatch.setattr(timezone, "now", lambda: clock[0])
    atomic = transaction.atomic

    def atomic_after_a_wait(*args, **kwargs):
        clock[0] += timedelta(seconds=0.5)  # others held the write lock this long
        return atomic(*args, **kwargs)

    monkeypatch.setattr(transaction, "atomic", atomic_after_a_wait)
    answered = clock[0]
    assert generation.defer_submit("The gateway is busy (429)", 1.0)
    generation.refresh_from_db()
    assert generation.next_action_at == answered + timedelta(seconds=1)


def test_a_burst_of_submissions_asks_once_for_each_shards_poller(alice, settings):
    settings.POLLER_SHARDS = 2
    for _ in range(5):
        tasks.ensure_poller()
    assert sorted(queued.kwargs()["shard"] for queued in OrmQ.objects.all()) == [0, 1]


def test_a_new_generation_asks_for_the_poller_of_its_own_shard(
    alice, settings, django_capture_on_commit_callbacks
):
    settings.POLLER_SHARDS = 3
    with django_capture_on_commit_callbacks(execute=True):
        generation = make(alice)
        tasks.enqueue_submit(generation)
    assert [queued.kwargs()["shard"] for queued in OrmQ.objects.all()] == [generation.pk % 3]


def test_every_generation_belongs_to_exactly_one_pollers_shard(alice, settings):
    settings.POLLER_SHARDS = 3
    generations = [make(alice) for _ in range(7)]

    shards = [set(Generation.objects.in_shard(n).values_list("pk", flat=True)) for n in range(3)]
    assert sorted(pk for shard in shards for pk in shard) == sorted(g.pk for g in generations)
    assert all(shards)  # seven ids in a row leave no shard empty
    assert Generation.objects.shards() == [0, 1, 2]
    assert Generation.objects.filter(pk=generations[0].pk).shards() == [generations[0].shard()]


def fetched_png():
    data = picture_bytes()
    return FetchedImage(
        data=data,
        width=96,
        height=64,
        format="png",
        content_type="image/png",
        size_bytes=len(data),
        thumbnail=picture_bytes(48, 32, format="WEBP"),
    )


def test_only_the_current_download_claim_stores_images_and_no_file_is_left_over(alice, media_root):
    generation = make(alice, num_images=2)
    expired_claim = timezone.now() - timedelta(minutes=5)
    Generation.objects.filter(pk=generation.pk).update(
        status=S.DOWNLOADING, claimed_at=expired_claim
    )
    # A worker that died part-way through storing left a file behind.
    default_storage.save(f"{generation.file_stem(0)}-dead.png", ContentFile(picture_bytes()))
    stale_worker = Generation.objects.get(pk=generation.pk)
    new_worker = Generation.objects.get(pk=generation.pk)
    assert new_worker.reclaim_download()

    assert not stale_worker.store_images([fetched_png(), fetched_png()])
    assert new_worker.store_images([fetched_png(), fetched_png()])

    generation.refresh_from_db()
    assert generation.status == S.COMPLETED
    referenced = sorted(
        name
        for image in generation.images.all()
        for name in (image.original.name, image.thumbnail.name)
    )
    stored = sorted(
        str(p.relative_to(media_root)) for p in Path(media_root).rglob("*") if p.is_file()
    )
    assert len(referenced) == 4
    assert stored == referenced
