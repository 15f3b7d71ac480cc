import io
import zipfile

import pytest
from django.core.files.storage import default_storage

from gallery.models import Gallery, Generation, ShareLink
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(alice):
    return make_generation(alice, prompt="A lighthouse at dusk, in watercolour!").images.get()


@pytest.fixture
def link(alice):
    return ShareLink.objects.create(gallery=Gallery.default_for(alice))


def body(response):
    return b"".join(response.streaming_content)


def unzip(response):
    assert response["Content-Type"] == "application/zip"
    assert response.streaming
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert archive.testzip() is None  # every entry's CRC checks out
    return archive


def test_the_owner_gets_the_original_privately_and_unsniffable(alice_client, image):
    response = alice_client.get(f"/media/images/{image.pk}/original/")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]
    assert (
        response["Content-Disposition"]
        == 'inline; filename="a-lighthouse-at-dusk-in-watercolour-1.png"'
    )
    assert body(response) == default_storage.open(image.original.name).read()


def test_the_owner_gets_the_thumbnail(alice_client, image):
    response = alice_client.get(f"/media/images/{image.pk}/thumbnail/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert body(response)[8:12] == b"WEBP"


def test_a_download_is_an_attachment_named_after_the_prompt(alice_client, alice):
    generation = make_generation(alice, prompt="Été à Paris: 2 cats", images=2)
    second = generation.images.get(index=1)

    response = alice_client.get(f"/media/images/{second.pk}/download/")

    assert response["Content-Disposition"] == 'attachment; filename="ete-a-paris-2-cats-2.png"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_a_prompt_without_letters_still_gives_a_file_name(alice_client, alice):
    image = make_generation(alice, prompt="🌅🌊").images.get()
    response = alice_client.get(f"/media/images/{image.pk}/download/")
    assert response["Content-Disposition"] == 'attachment; filename="image-1.png"'


@pytest.mark.parametrize("kind", ["original", "thumbnail", "download"])
def test_it_refuses_other_users_image(client, bob, image, kind):
    client.force_login(bob)
    assert client.get(f"/media/images/{image.pk}/{kind}/").status_code == 404


@pytest.mark.parametrize("kind", ["original", "thumbnail", "download"])
def test_an_anonymous_visitor_is_sent_to_sign_in(client, image, kind):
    response = client.get(f"/media/images/{image.pk}/{kind}/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_stored_files_have_no_public_url(alice_client, image):
    # MEDIA_URL is never routed: even the owner can't fetch a file by its storage path.
    assert alice_client.get(f"/media/{image.original.name}").status_code == 404
    assert alice_client.get(f"/{image.original.name}").status_code == 404


def test_a_missing_file_answers_404(alice_client, image):
    default_storage.delete(image.original.name)
    assert alice_client.get(f"/media/images/{image.pk}/original/").status_code == 404


@pytest.mark.parametrize(
    ("kind", "content_type", "disposition"),
    [
        ("original", "image/png", "inline"),
        ("thumbnail", "image/webp", "inline"),
        ("download", "image/png", "attachment"),
    ],
)
def test_a_live_link_serves_its_images_to_anyone(
    client, link, image, kind, content_type, disposition
):
    response = client.get(f"/s/{link.token}/images/{image.pk}/{kind}/")

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"].startswith(disposition)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "private" in response["Cache-Control"]


def test_a_link_serves_no_image_from_another_gallery(client, alice, link):
    elsewhere = Gallery.objects.create(owner=alice, name="Private")
    other = make_generation(alice, gallery=elsewhere).images.get()
    for kind in ("original", "thumbnail", "download"):
        assert client.get(f"/s/{link.token}/images/{other.pk}/{kind}/").status_code == 404


def test_a_link_serves_no_image_of_an_unfinished_generation(client, link, image):
    Generation.objects.filter(pk=image.generation_id).update(status=Generation.Status.DOWNLOADING)
    assert client.get(f"/s/{link.token}/images/{image.pk}/original/").status_code == 404


def test_behind_nginx_the_view_checks_and_nginx_sends_the_file(alice_client, settings, image):
    settings.MEDIA_ACCEL_REDIRECT_PREFIX = "/protected-media/"

    response = alice_client.get(f"/media/images/{image.pk}/download/")

    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected-media/{image.original.name}"
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == b""


def test_the_gallery_zip_holds_every_image_whole_with_unique_names(alice_client, alice):
    gallery = Gallery.objects.create(owner=alice, name="Sea & Sky")
    first = make_generation(alice, gallery=gallery, prompt="A red kite", images=2)
    again = make_generation(alice, gallery=gallery, prompt="A red kite", images=1)
    make_generation(alice, gallery=gallery, prompt="Unfinished", images=0, status="IN_PROGRESS")
    make_generation(alice, prompt="Another gallery", images=1)

    response = alice_client.get(f"/galleries/{gallery.pk}/download.zip")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="sea-sky.zip"'
    assert response["X-Content-Type-Options"] == "nosniff"
    archive = unzip(response)
    # Newest generation first; the second "A red kite" #1 gets a distinct name.
    assert archive.namelist() == ["a-red-kite-1.png", "a-red-kite-1-2.png", "a-red-kite-2.png"]
    expected = [again.images.get(index=0), *first.images.order_by("index")]
    for info, image in zip(archive.infolist(), expected, strict=True):
        assert info.compress_type == zipfile.ZIP_STORED  # images are compressed already
        assert info.file_size == image.size_bytes
        assert archive.read(info) == default_storage.open(image.original.name).read()


def test_a_shared_gallery_zip_holds_only_its_completed_images(client, alice, link):
    make_generation(alice, prompt="Done", images=2)
    failed = make_generation(alice, prompt="Broken", images=1)
    Generation.objects.filter(pk=failed.pk).update(status=Generation.Status.FAILED)

    response = client.get(f"/s/{link.token}/download.zip")

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="my-images.zip"'
    assert unzip(response).namelist() == ["done-1.png", "done-2.png"]


def test_a_zip_skips_a_lost_file_instead_of_failing(alice_client, alice):
    generation = make_generation(alice, prompt="Kept", images=2)
    default_storage.delete(generation.images.get(index=0).original.name)
    response = alice_client.get(f"/galleries/{Gallery.default_for(alice).pk}/download.zip")
    assert unzip(response).namelist() == ["kept-2.png"]


def test_an_empty_gallery_zips_to_an_empty_archive(alice_client, alice):
    response = alice_client.get(f"/galleries/{Gallery.default_for(alice).pk}/download.zip")
    assert unzip(response).namelist() == []


def test_it_refuses_other_users_gallery_zip(client, bob, image):
    client.force_login(bob)
    gallery = image.generation.gallery
    assert client.get(f"/galleries/{gallery.pk}/download.zip").status_code == 404
