"""A reservation is released when its request is never sent: "A request reserves at Generate;
the reservation becomes an entry at submit, or is released if the generation is cancelled
or fails before it was ever sent" (issue 18). And a gallery's budget set by staff in admin
holds every Generate into that gallery.

Everything goes through the real views (the Django test client, as a browser posts the
studio's form); the failures before sending come from a real worker against the gateway
simulator over HTTP.
"""

from decimal import Decimal

import pytest

from gallery.models import Gallery, Generation, Quota, Role, UsageEntry, UsageTotal
from tests.conftest import make_user
from tests.test_spend import form_data

S = Generation.Status


def generate(client, **fields):
    """Press Generate in the studio (htmx): (the generation it saved or None, the page text)."""
    newest = Generation.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = client.post("/generate/", form_data(**fields), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    made = Generation.objects.filter(pk__gt=newest).order_by("pk")
    assert made.count() <= 1
    return made.first(), response.text


def person_images_this_month(user):
    """What the ledger's month total counts for `user` (0 without a row)."""
    row = UsageTotal.objects.filter(scope="person", user=user).first()
    return row.images if row else 0


# -- cancelled before it was sent ---------------------------------------------------------


def test_cancelling_a_queued_request_releases_its_images_and_writes_no_ledger_entry(
    alice, alice_client, django_capture_on_commit_callbacks
):
    Quota.objects.create(user=alice, monthly_images=3)
    # No worker runs: what Generate enqueues waits in the queue, and the requests stay PENDING.
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = generate(alice_client, num_images=2)
        queued, _ = generate(alice_client, num_images=1)
    assert first is not None and queued is not None
    assert {first.status, queued.status} == {S.PENDING}

    refused, page = generate(alice_client, num_images=1)

    assert refused is None
    assert (
        "This request needs 1 image, and your monthly quota has 0 images left this month "
        "(3 of 3 images used). Nothing was sent." in page
    )

    card = alice_client.post(f"/generations/{queued.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert card.status_code == 200
    queued.refresh_from_db()
    assert queued.status == S.CANCELLED

    again, page = generate(alice_client, num_images=1)

    assert again is not None, page
    assert again.status == S.PENDING
    # Never sent, so never spent: the ledger knows nothing of the cancelled request.
    assert not UsageEntry.objects.filter(generation=queued).exists()
    assert not UsageEntry.objects.exists()
    assert person_images_this_month(alice) == 0
    # And the room it gave back is exactly its one image: the quota is full again.
    refused, page = generate(alice_client, num_images=1)
    assert refused is None
    assert "your monthly quota has 0 images left this month (3 of 3 images used)" in page


# -- failed before it was sent ------------------------------------------------------------


@pytest.mark.parametrize(
    ("gateway", "env", "reason"),
    [
        # The gateway refuses the submit with a 400 (bad parameters): never accepted.
        pytest.param({"fail_next": [400]}, {}, "refused the request", id="refused-with-400"),
        # The gateway answers 429 to every submit until the deadline passes: never accepted.
        pytest.param(
            {"submit_429_every": 1},
            {"GENERATION_DEADLINE_SECONDS": "2"},
            "No result within 2 seconds",
            id="busy-until-the-deadline",
        ),
    ],
)
def test_a_request_that_failed_before_the_gateway_accepted_it_releases_its_images(
    make_pipeline, client, gateway, env, reason
):
    alice = make_user("alice")
    Quota.objects.create(user=alice, monthly_images=2)
    client.force_login(alice)
    # The worker starts only once the request is reserved and a second one was refused.
    pipeline = make_pipeline(clusters=0, env=env, **gateway)

    doomed, _ = generate(client, num_images=2)
    assert doomed is not None and doomed.status == S.PENDING
    refused, page = generate(client, num_images=1)
    assert refused is None
    assert "your monthly quota has 0 images left this month (2 of 2 images used)" in page

    pipeline.start_worker()
    pipeline.wait_until_finished([doomed], timeout=30)

    assert doomed.status == S.FAILED
    assert reason in doomed.error
    assert pipeline.simulator.submissions == 0  # the gateway accepted nothing
    # Each claim's spend was given back when the gateway refused it: nothing counts.
    kinds = list(UsageEntry.objects.filter(generation=doomed).values_list("kind", flat=True))
    assert UsageEntry.Kind.SPEND in kinds  # it was claimed for sending, then refused
    assert kinds.count(UsageEntry.Kind.SPEND) == kinds.count(UsageEntry.Kind.REFUND)
    assert person_images_this_month(alice) == 0

    again, page = generate(client, num_images=2)

    assert again is not None, page


# -- a gallery budget set by staff in admin -----------------------------------------------


def admin_change_form_data(response):
    """What the admin change page would post back unchanged: the main form's values and
    every inline formset's management form and rows, as a browser submits them."""
    data = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(n): management[n].value() for n in management.fields})
        forms += inline.formset.forms
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is not None:
                data[form.add_prefix(name)] = value
    return data


def test_a_gallery_budget_staff_set_in_admin_holds_every_generate_into_that_gallery(
    client, alice, bob, staff
):
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    campaign.add_member(bob, Role.CONTRIBUTOR, added_by=alice)
    client.force_login(staff)
    change = f"/admin/gallery/gallery/{campaign.pk}/change/"
    data = admin_change_form_data(client.get(change))
    data["monthly_budget"] = "0.20"

    saved = client.post(change, data)

    assert saved.status_code == 302, saved.context["adminform"].form.errors
    campaign.refresh_from_db()
    assert campaign.monthly_budget == Decimal("0.20")
    assert list(campaign.members.values_list("user__username", flat=True)) == ["bob"]

    client.force_login(alice)
    first, page = generate(client, gallery=campaign.pk, quality="high")  # $0.133
    assert first is not None, page

    client.force_login(bob)  # any member is held to it, not only the owner
    refused, page = generate(client, gallery=campaign.pk, quality="high")

    assert refused is None
    assert (
        "This request needs $0.133, and the monthly budget of “Campaign” has $0.067 left this "
        "month ($0.133 of $0.20 used). Nothing was sent." in page
    )
    # What fits the rest is let through; and the budget is that gallery's alone.
    assert generate(client, gallery=campaign.pk, quality="low")[0] is not None  # $0.009
    assert generate(client, quality="high")[0] is not None
