"""The REST API under /api/: every endpoint for the token's owner, for another person's token
(404 for what its owner may not see) and without a token (401); read-only tokens refused on
what would spend or change (403); the same form, limits and state machine as the studio."""

import json

import pytest
from django.test import Client
from openapi_spec_validator import validate

from gallery import tasks
from gallery.models import ApiToken, Gallery, Generation, Quota, UsageTotal
from tests.conftest import make_user
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db
S = Generation.Status
BODY = {"prompt": "a red kite over the dunes", "quality": "low", "image_size": "1024x1024"}


@pytest.fixture(autouse=True)
def nothing_sent(monkeypatch):
    # What is sent, and when, is the pipeline's (tests/test_api_openai.py runs it for real).
    sent = []
    monkeypatch.setattr(tasks, "enqueue_submit", sent.append)
    return sent


def token_for(user, **fields):
    token = ApiToken(user=user, name=fields.pop("name", "script"), **fields)
    token.save()
    return token


class Api:
    """A client that speaks JSON with a bearer token (or none)."""

    def __init__(self, token=None):
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path, **query):
        return self.client.get(path, query, headers=self.headers)

    def post(self, path, body=None):
        data = json.dumps(body or {})
        return self.client.post(path, data, content_type="application/json", headers=self.headers)


@pytest.fixture
def world(alice, bob):
    secret = Gallery.objects.create(owner=alice, name="Secret plans")
    alices = make_generation(alice, gallery=secret, prompt="Alice's plan", images=2)
    failed = make_generation(alice, gallery=secret, images=0, status=S.FAILED)
    queued = make_generation(alice, gallery=secret, images=0, status=S.IN_QUEUE)
    return {
        "secret": secret,
        "done": alices,
        "image": alices.images.first(),
        "failed": failed,
        "queued": queued,
        "alice": Api(token_for(alice).token),
        "alice_reader": Api(token_for(alice, access=ApiToken.Access.READ).token),
        "bob": Api(token_for(bob).token),
        "nobody": Api(),
    }


def endpoints(world):
    """(method, path, body) of every endpoint, aimed at Alice's things."""
    done, image = world["done"], world["image"]
    return [
        ("POST", "/api/generations", {**BODY, "gallery": world["secret"].pk}),
        ("GET", "/api/generations", None),
        ("GET", f"/api/generations/{done.pk}", None),
        ("POST", f"/api/generations/{world['queued'].pk}/cancel", None),
        ("POST", f"/api/generations/{world['failed'].pk}/retry", None),
        ("GET", "/api/galleries", None),
        ("GET", f"/api/images/{image.pk}/original", None),
    ]


def call(api, method, path, body):
    return api.post(path, body) if method == "POST" else api.get(path)


def test_every_endpoint_answers_its_owner(world):
    answers = [
        (method, path, call(world["alice"], method, path, body).status_code)
        for method, path, body in endpoints(world)
    ]
    assert [code for *_, code in answers] == [202, 200, 200, 200, 202, 200, 200], answers
    listed = world["alice"].get("/api/generations").json()
    assert "Alice's plan" in [item["prompt"] for item in listed["items"]]


def test_another_persons_token_gets_404_for_what_its_owner_cannot_see(world):
    wrong = []
    for method, path, body in endpoints(world):
        response = call(world["bob"], method, path, body)
        if path in ("/api/generations", "/api/galleries"):
            # Bob's own lists, and his create into Alice's gallery is refused by the form.
            text = response.content.decode()
            if "Alice" in text or "Secret plans" in text or response.status_code == 202:
                wrong.append((method, path, response.status_code))
        elif response.status_code != 404:
            wrong.append((method, path, response.status_code))
    assert wrong == []
    assert world["bob"].get("/api/generations", gallery=world["secret"].pk).status_code == 404
    world["failed"].refresh_from_db()
    world["queued"].refresh_from_db()
    assert (world["failed"].status, world["queued"].status) == (S.FAILED, S.IN_QUEUE)


def test_no_token_or_a_revoked_one_gets_401(world, alice):
    revoked = token_for(alice, name="old")
    revoked.revoke()
    for api in (world["nobody"], Api(revoked.token), Api("drk_" + "x" * 43), Api("nonsense")):
        for method, path, body in endpoints(world):
            response = call(api, method, path, body)
            assert response.status_code == 401, (method, path)
            assert response["WWW-Authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in response.json()["detail"]
    assert Generation.objects.count() == 3


def test_a_session_cookie_is_no_token(client, world, alice):
    client.force_login(alice)
    assert client.get("/api/generations").status_code == 401


def test_a_read_only_token_reads_but_never_spends_or_changes(world):
    reader = world["alice_reader"]
    for method, path, body in endpoints(world):
        response = call(reader, method, path, body)
        if method == "POST":
            assert response.status_code == 403, path
            assert "read-only" in response.json()["detail"]
        else:
            assert response.status_code == 200, path
    assert Generation.objects.count() == 3
    world["failed"].refresh_from_db()
    assert world["failed"].status == S.FAILED


def test_a_deactivated_owners_token_stops_working(world, alice):
    alice.is_active = False
    alice.save()
    assert world["alice"].get("/api/galleries").status_code == 401


def test_create_uses_the_forms_validation_and_names_each_bad_field(world):
    response = world["alice"].post(
        "/api/generations",
        {
            "prompt": " ",
            "image_size": "512x512",
            "background": "transparent",
            "output_format": "jpeg",
        },
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"prompt", "image_size", "output_format"}
    assert "prompt can't be empty" in errors["prompt"][0]
    assert "JPEG has no transparency" in errors["output_format"][0]
    assert (
        world["alice"].post("/api/generations", {"prompt": 5, "num_images": "x"}).status_code == 400
    )
    assert Generation.objects.count() == 3


def test_create_answers_202_with_the_generation_and_its_urls(world, alice, nothing_sent):
    response = world["alice"].post("/api/generations", {**BODY, "num_images": 2})
    assert response.status_code == 202
    made = response.json()
    generation = Generation.objects.get(pk=made["id"])
    assert nothing_sent == [generation]
    assert (generation.owner, generation.gallery) == (alice, Gallery.default_for(alice))
    assert generation.api_token.name == "script"
    assert made["status"] == "PENDING" and made["num_images"] == 2
    assert response["Location"] == f"/api/generations/{generation.pk}"
    assert made["url"] == f"http://testserver/generations/{generation.pk}/"
    assert world["alice"].get(response["Location"]).json()["id"] == generation.pk


def test_a_tokens_gallery_takes_its_images_unless_a_request_names_another(alice, world):
    chat = Gallery.objects.create(owner=alice, name="Chat images")
    api = Api(token_for(alice, gallery=chat).token)
    made = api.post("/api/generations", BODY).json()
    assert made["gallery_name"] == "Chat images"
    elsewhere = api.post("/api/generations", {**BODY, "gallery": world["secret"].pk}).json()
    assert elsewhere["gallery_name"] == "Secret plans"


def test_a_tokens_gallery_its_owner_may_no_longer_add_to_is_refused(alice, bob):
    shared = Gallery.objects.create(owner=alice, name="Team board")
    membership = shared.add_member(bob, "contributor", added_by=alice)
    api = Api(token_for(bob, gallery=shared).token)
    assert api.post("/api/generations", BODY).status_code == 202
    membership.delete()
    response = api.post("/api/generations", BODY)
    assert response.status_code == 400
    assert "no longer takes your images" in response.json()["errors"]["gallery"][0]


def test_over_the_quota_it_is_429_with_retry_after_and_nothing_is_saved(alice, world):
    Quota.objects.create(user=alice, monthly_images=4)  # 3 of them sent already (world)
    response = world["alice"].post("/api/generations", {**BODY, "num_images": 2})
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "your monthly quota has 1 image left" in response.json()["detail"]
    assert world["alice"].post("/api/generations", BODY).status_code == 202


def test_a_tokens_own_cap_is_one_more_limit_of_the_same_reservation(alice):
    capped = token_for(alice, name="nightly", monthly_images=3)
    api, other = Api(capped.token), Api(token_for(alice).token)
    assert api.post("/api/generations", {**BODY, "num_images": 2}).status_code == 202
    refused = api.post("/api/generations", {**BODY, "num_images": 2})
    assert refused.status_code == 429
    assert "the monthly cap of the API token “nightly” has 1 image left" in refused.json()["detail"]
    # The cap is the token's: the owner's other token (and the studio) are not held by it.
    assert other.post("/api/generations", {**BODY, "num_images": 2}).status_code == 202
    # Sent, the reservation becomes the ledger's, under the token's month total.
    Generation.objects.filter(api_token=capped).claim_for_submit()
    total = UsageTotal.objects.get(scope=UsageTotal.Scope.TOKEN, api_token=capped)
    assert total.images == 2
    assert api.post("/api/generations", {**BODY, "num_images": 2}).status_code == 429
    assert api.post("/api/generations", BODY).status_code == 202


def test_an_account_waiting_for_approval_gets_403(settings, db):
    from gallery.models import AccountApproval

    waiting = make_user("newcomer")
    AccountApproval.objects.create(user=waiting)
    response = Api(token_for(waiting).token).post("/api/generations", BODY)
    assert response.status_code == 403
    assert Generation.objects.filter(owner=waiting).count() == 0


def test_list_is_newest_first_in_cursor_pages_with_the_studios_filters(alice, world):
    for n in range(5):
        make_generation(alice, prompt=f"kite {n}", images=0, status=S.CANCELLED)
    api = world["alice"]
    first = api.get("/api/generations", limit=2, q="kite").json()
    assert [item["prompt"] for item in first["items"]] == ["kite 4", "kite 3"]
    second = api.client.get(first["next"], headers=api.headers).json()
    assert [item["prompt"] for item in second["items"]] == ["kite 2", "kite 1"]
    third = api.client.get(second["next"], headers=api.headers).json()
    assert [item["prompt"] for item in third["items"]] == ["kite 0"] and third["next"] is None
    failed = api.get("/api/generations", status="FAILED").json()["items"]
    assert [item["id"] for item in failed] == [world["failed"].pk]
    in_gallery = api.get("/api/generations", gallery=world["secret"].pk).json()["items"]
    assert len(in_gallery) == 3


def test_one_generation_shows_progress_and_its_images_download_urls(world):
    api = world["alice"]
    queued = api.get(f"/api/generations/{world['queued'].pk}").json()
    assert (queued["status"], queued["finished"], queued["images"]) == ("IN_QUEUE", False, [])
    done = api.get(f"/api/generations/{world['done'].pk}").json()
    assert [image["index"] for image in done["images"]] == [0, 1]
    download = api.client.get(done["images"][1]["download_url"], headers=api.headers)
    assert download.status_code == 200 and download["Content-Type"] == "image/png"
    assert b"".join(download.streaming_content).startswith(b"\x89PNG")


def test_cancel_and_retry_follow_the_state_machine(world, nothing_sent):
    api = world["alice"]
    done = world["done"].pk
    assert api.post(f"/api/generations/{done}/cancel").status_code == 409
    assert api.post(f"/api/generations/{done}/retry").status_code == 409
    cancelled = api.post(f"/api/generations/{world['queued'].pk}/cancel").json()
    assert cancelled["status"] == "CANCELLED"
    retried = api.post(f"/api/generations/{world['queued'].pk}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "PENDING"
    assert [g.pk for g in nothing_sent] == [world["queued"].pk]


def test_a_retry_over_the_quota_is_429(alice, world):
    Quota.objects.create(user=alice, monthly_images=2)
    response = world["alice"].post(f"/api/generations/{world['failed'].pk}/retry")
    assert response.status_code == 429 and "Retry-After" in response
    world["failed"].refresh_from_db()
    assert world["failed"].status == S.FAILED


def test_galleries_list_what_the_owner_sees_with_their_role(alice, bob, world):
    board = Gallery.objects.create(owner=bob, name="Bob's board")
    board.add_member(alice, "viewer", added_by=bob)
    galleries = {g["name"]: g for g in world["alice"].get("/api/galleries").json()}
    assert (
        galleries["Secret plans"]["role"] == "owner" and galleries["Secret plans"]["may_generate"]
    )
    assert galleries["Bob's board"]["role"] == "viewer"
    assert not galleries["Bob's board"]["may_generate"]


def test_the_openapi_document_validates_and_needs_a_signed_in_person(client, alice):
    for path in ("/api/openapi.json", "/api/docs"):
        assert client.get(path)["Location"].startswith("/accounts/login/?next=/api/")
    client.force_login(alice)
    document = client.get("/api/openapi.json").json()
    validate(document)
    assert set(document["paths"]) == {
        "/api/generations",
        "/api/generations/{pk}",
        "/api/generations/{pk}/cancel",
        "/api/generations/{pk}/retry",
        "/api/galleries",
        "/api/images/{pk}/original",
    }
    assert document["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"


def test_last_used_is_noted_without_a_write_per_call(alice, django_assert_num_queries):
    token = token_for(alice)
    api = Api(token.token)
    api.get("/api/galleries")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    api.get("/api/galleries")
    token.refresh_from_db()
    assert token.last_used_at == first  # within the minute: not written again
