"""The OpenAI-compatible endpoint, called by the official `openai` package (never by hand-made
requests) over real HTTP, with the real pipeline behind it: the gateway simulator and a
qcluster subprocess. What it makes is a normal generation, in its owner's studio."""

import base64
import io
import time

import httpx
import openai
import pytest
from PIL import Image as PillowImage

from gallery.models import ApiToken, Gallery, Generation, Quota, UsageEntry

S = Generation.Status


@pytest.fixture
def site(live_server, pipeline, alice):
    return live_server


def client_with(site, token, **options):
    # max_retries=0: the package retries 429 and 5xx answers by itself otherwise.
    return openai.OpenAI(
        base_url=f"{site.url}/v1", api_key=token, max_retries=0, timeout=60, **options
    )


def new_token(user, **fields):
    token = ApiToken(user=user, name=fields.pop("name", "Open WebUI"), **fields)
    token.save()
    return token


def test_images_generate_returns_the_images_and_they_are_in_the_studio(site, alice, client):
    token = new_token(alice)
    result = client_with(site, token.token).images.generate(
        model="gpt-image-1.5", prompt="a lighthouse at dusk", n=2, size="1536x1024"
    )
    assert len(result.data) == 2
    for item in result.data:
        picture = PillowImage.open(io.BytesIO(base64.b64decode(item.b64_json)))
        assert (picture.format, picture.size) == ("PNG", (1536, 1024))
    assert result.size == "1536x1024" and result.quality == "high"  # auto → high

    generation = Generation.objects.get()
    assert (generation.owner, generation.status, generation.api_token) == (
        alice,
        S.COMPLETED,
        token,
    )
    assert generation.images.count() == 2
    client.force_login(alice)
    assert "a lighthouse at dusk" in client.get("/").content.decode()  # in the studio
    spent = UsageEntry.objects.get(generation=generation)
    assert (spent.images, spent.api_token) == (2, token)


def test_auto_size_model_left_out_and_unknown_fields_are_taken_as_openai_takes_them(site, alice):
    result = client_with(site, new_token(alice).token).images.generate(
        prompt="a kite", size="auto", quality="low", extra_body={"style": "vivid", "user": "u1"}
    )
    (item,) = result.data
    picture = PillowImage.open(io.BytesIO(base64.b64decode(item.b64_json)))
    assert picture.size == (1024, 1024)
    generation = Generation.objects.get()
    assert (generation.image_size, generation.quality) == ("1024x1024", "low")


def test_a_url_answer_is_a_signed_link_that_works_without_a_token_until_revoked(site, alice):
    token = new_token(alice)
    result = client_with(site, token.token).images.generate(
        model="gpt-image-1.5", prompt="a kite", response_format="url", output_format="webp"
    )
    (item,) = result.data
    assert "drk_" not in item.url
    fetched = httpx.get(item.url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/webp"
    assert PillowImage.open(io.BytesIO(fetched.content)).format == "WEBP"
    # Not a key to other images: the signature covers the image.
    other = item.url.replace("/files/", "/files/x")
    assert httpx.get(other).status_code == 404
    token.revoke()
    assert httpx.get(item.url).status_code == 404


def test_the_token_gallery_takes_the_images(site, alice):
    chat = Gallery.objects.create(owner=alice, name="Chat images")
    client_with(site, new_token(alice, gallery=chat).token).images.generate(prompt="a kite")
    assert Generation.objects.get().gallery == chat


def test_a_revoked_token_raises_authentication_error(site, alice):
    token = new_token(alice)
    token.revoke()
    with pytest.raises(openai.AuthenticationError) as raised:
        client_with(site, token.token).images.generate(prompt="a kite")
    assert raised.value.status_code == 401
    assert "Authorization: Bearer" in raised.value.message
    assert not Generation.objects.exists()


def test_a_read_only_token_raises_permission_denied(site, alice):
    token = new_token(alice, access=ApiToken.Access.READ)
    with pytest.raises(openai.PermissionDeniedError, match="read-only"):
        client_with(site, token.token).images.generate(prompt="a kite")
    assert not Generation.objects.exists()


@pytest.mark.parametrize(
    ("params", "param", "says"),
    [
        ({"size": "512x512"}, "size", "512x512 is not one of the available choices"),
        ({"n": 7}, "n", "7 is not one of the available choices"),
        ({"background": "transparent", "output_format": "jpeg"}, "output_format", "JPEG has no"),
        ({"model": "dall-e-3"}, "model", "isn't served here"),
        ({"prompt": "   "}, "prompt", "prompt can't be empty"),
    ],
)
def test_bad_input_raises_bad_request_naming_the_parameter(site, alice, params, param, says):
    request = {"prompt": "a kite", **params}
    with pytest.raises(openai.BadRequestError) as raised:
        client_with(site, new_token(alice).token).images.generate(**request)
    assert raised.value.status_code == 400
    assert raised.value.param == param
    assert says in raised.value.message
    assert not Generation.objects.exists()


def test_an_exhausted_quota_raises_rate_limit_error_and_sends_nothing(site, alice, pipeline):
    Quota.objects.create(user=alice, monthly_images=2)
    client = client_with(site, new_token(alice).token)
    client.images.generate(prompt="a kite", n=2, quality="low")
    with pytest.raises(openai.RateLimitError) as raised:
        client.images.generate(prompt="one more", quality="low")
    assert "your monthly quota has 0 images left" in raised.value.message
    response = raised.value.response
    assert int(response.headers["retry-after"]) > 0
    # Retrying would not help before the month ends: the package is told not to.
    assert response.headers["x-should-retry"] == "false"
    assert Generation.objects.count() == 1
    assert pipeline.simulator.submissions == 1


def test_a_tokens_own_cap_raises_rate_limit_error(site, alice):
    client = client_with(site, new_token(alice, monthly_images=1).token)
    client.images.generate(prompt="a kite", quality="low")
    with pytest.raises(openai.RateLimitError, match="monthly cap of the API token"):
        client.images.generate(prompt="a kite", quality="low")


def test_a_failed_generation_raises_an_api_status_error_with_the_providers_reason(site, alice):
    from gallery.simulator import FAILURE_TEXT

    with pytest.raises(openai.APIStatusError) as raised:
        client_with(site, new_token(alice).token).images.generate(prompt="a kite #fail")
    assert raised.value.status_code == 502
    assert FAILURE_TEXT in raised.value.message
    assert raised.value.response.headers["x-should-retry"] == "false"  # it would spend again
    assert Generation.objects.get().status == S.FAILED


def test_taking_longer_than_the_timeout_is_a_504_and_the_generation_goes_on(
    live_server, make_pipeline, alice, settings
):
    make_pipeline(queue_seconds=3)
    settings.OPENAI_COMPAT_TIMEOUT = 0.5
    with pytest.raises(openai.InternalServerError) as raised:
        client_with(live_server, new_token(alice).token).images.generate(prompt="a slow kite")
    assert raised.value.status_code == 504
    generation = Generation.objects.get()
    assert f"/generations/{generation.pk}/" in raised.value.message
    assert generation.status not in (S.FAILED, S.CANCELLED)


def test_the_rest_api_over_http_makes_a_generation_and_serves_its_image(site, alice):
    token = new_token(alice).token
    api = httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    made = api.post("/api/generations", json={"prompt": "a kite", "quality": "low"})
    assert made.status_code == 202
    deadline = time.monotonic() + 30
    while not (current := api.get(made.headers["Location"]).json())["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert current["status"] == "COMPLETED"
    (image,) = current["images"]
    original = api.get(image["download_url"])
    assert PillowImage.open(io.BytesIO(original.content)).size == (1024, 1024)
