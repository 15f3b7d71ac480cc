import pytest
from django.core.files.storage import default_storage
from django.template.loader import render_to_string
from django.test import RequestFactory

from gallery.models import Gallery, Generation, Image, ShareLink
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def posters(alice):
    return Gallery.objects.create(owner=alice, name="Posters")


def test_galleries_page_lists_each_gallery_with_counts_and_a_cover(alice_client, alice, posters):
    make_generation(alice, gallery=posters, images=3)
    newest = make_generation(alice, gallery=posters, prompt="A red kite", images=1)
    make_generation(alice, gallery=posters, images=0, status=Generation.Status.FAILED)

    response = alice_client.get("/galleries/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "My images" in html and "Posters" in html
    assert "4 images · 3 generations" in html
    assert "0 images · 0 generations" in html
    cover = newest.images.get()
    assert f'src="/media/images/{cover.pk}/thumbnail/"' in html
    assert "No images yet" in html  # the empty default gallery
    assert f'href="/?gallery={posters.pk}"' in html
    assert f'href="/galleries/{posters.pk}/download.zip"' in html


def test_the_navigation_links_to_galleries(alice_client):
    html = alice_client.get("/galleries/").content.decode()
    assert '<a href="/galleries/" aria-current="page">Galleries</a>' in html


def test_it_creates_a_gallery(alice_client, alice):
    response = alice_client.post("/galleries/new/", {"name": "Moodboard"})

    gallery = Gallery.objects.get(owner=alice, name="Moodboard")
    assert response.status_code == 302
    assert response["Location"] == f"/galleries/#gallery-{gallery.pk}"
    assert not gallery.is_default


def test_it_refuses_a_second_gallery_with_the_same_name_in_any_case(alice_client, posters):
    response = alice_client.post("/galleries/new/", {"name": "posters"})

    assert response.status_code == 200
    assert "You already have a gallery called “posters”." in response.content.decode()
    assert Gallery.objects.filter(name__iexact="posters").count() == 1


def test_two_people_may_each_have_a_gallery_of_the_same_name(client, bob, posters):
    client.force_login(bob)
    client.post("/galleries/new/", {"name": "Posters"})
    assert Gallery.objects.filter(name="Posters").count() == 2


def test_renaming_with_htmx_answers_the_updated_card(alice_client, posters):
    response = alice_client.post(f"/galleries/{posters.pk}/rename/", {"name": "Prints"}, **HTMX)

    posters.refresh_from_db()
    assert posters.name == "Prints"
    html = response.content.decode()
    assert html.lstrip().startswith(f'<article class="gallery-card" id="gallery-{posters.pk}"')
    assert "Prints" in html and "<html" not in html


def test_renaming_without_javascript_redirects_to_the_card(alice_client, posters):
    response = alice_client.post(f"/galleries/{posters.pk}/rename/", {"name": "Prints"})
    assert response.status_code == 302
    assert response["Location"] == f"/galleries/#gallery-{posters.pk}"


def test_renaming_to_a_taken_name_shows_why_and_keeps_the_name(alice_client, posters):
    response = alice_client.post(f"/galleries/{posters.pk}/rename/", {"name": "My images"})

    assert response.status_code == 200
    assert "You already have a gallery called “My images”." in response.content.decode()
    posters.refresh_from_db()
    assert posters.name == "Posters"


def test_deleting_a_gallery_can_move_its_images_to_the_default_gallery(
    alice_client, alice, posters
):
    generation = make_generation(alice, gallery=posters, images=2)

    response = alice_client.post(f"/galleries/{posters.pk}/delete/", {"images": "keep"})

    assert response.status_code == 302
    assert not Gallery.objects.filter(pk=posters.pk).exists()
    generation.refresh_from_db()
    assert generation.gallery == Gallery.default_for(alice)
    assert all(default_storage.exists(image.original.name) for image in generation.images.all())
    page = alice_client.get("/galleries/").content.decode()
    assert "Deleted “Posters”; its images are in “My images”." in page


def test_deleting_a_gallery_with_its_images_sends_them_to_the_trash(
    alice_client, alice, posters, django_capture_on_commit_callbacks
):
    generation = make_generation(alice, gallery=posters, images=2)
    kept = make_generation(alice, images=1)
    files = [name for image in generation.images.all() for name in image_files(image)]

    alice_client.post(f"/galleries/{posters.pk}/delete/", {"images": "delete"})

    generation.refresh_from_db()
    assert generation.is_trashed and generation.gallery == Gallery.default_for(alice)
    assert "A lighthouse" in alice_client.get("/trash/").content.decode()
    assert all(default_storage.exists(name) for name in files)  # restorable meanwhile
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post("/trash/empty/")
    assert not Generation.objects.filter(pk=generation.pk).exists()
    assert not any(default_storage.exists(name) for name in files)
    assert all(default_storage.exists(name) for name in image_files(kept.images.get()))


def test_deleting_a_gallery_stops_its_share_links(alice_client, alice, posters):
    link = ShareLink.objects.create(gallery=posters)
    alice_client.post(f"/galleries/{posters.pk}/delete/", {"images": "keep"})
    assert alice_client.get(f"/s/{link.token}/").status_code == 404


def test_the_default_gallery_cannot_be_deleted(alice_client, alice):
    default = Gallery.default_for(alice)
    make_generation(alice, images=1)

    response = alice_client.post(f"/galleries/{default.pk}/delete/", {"images": "delete"})

    assert response.status_code == 302
    assert Gallery.objects.filter(pk=default.pk).exists()
    assert Image.objects.count() == 1
    page = alice_client.get("/galleries/").content.decode()
    assert "“My images” is your default gallery" in page


def test_the_galleries_page_offers_no_delete_for_the_default_gallery(alice_client, alice, posters):
    html = alice_client.get("/galleries/").content.decode()
    default = Gallery.default_for(alice)
    assert f"/galleries/{posters.pk}/delete/" in html
    assert f"/galleries/{default.pk}/delete/" not in html


def test_moving_a_generation_puts_it_in_the_chosen_gallery(alice_client, alice, posters):
    generation = make_generation(alice)

    response = alice_client.post(
        f"/generations/{generation.pk}/move/", {"gallery": posters.pk, "next": "/?gallery=1"}
    )

    generation.refresh_from_db()
    assert generation.gallery == posters
    assert response.status_code == 302
    assert response["Location"] == "/?gallery=1"


def test_moving_never_redirects_to_another_site(alice_client, alice, posters):
    generation = make_generation(alice)
    response = alice_client.post(
        f"/generations/{generation.pk}/move/",
        {"gallery": posters.pk, "next": "https://evil.example/"},
    )
    assert response["Location"] == f"/?gallery={posters.pk}"


def test_moving_with_htmx_answers_the_move_form_saying_where_it_went(alice_client, alice, posters):
    generation = make_generation(alice)

    response = alice_client.post(
        f"/generations/{generation.pk}/move/", {"gallery": posters.pk, "next": "/"}, **HTMX
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<form class="move-form"')
    assert "Moved to Posters" in html
    assert f'<option value="{posters.pk}" selected>Posters</option>' in html


def test_it_refuses_to_move_a_generation_into_another_users_gallery(alice_client, alice, bob):
    generation = make_generation(alice)
    bobs = Gallery.default_for(bob)

    response = alice_client.post(f"/generations/{generation.pk}/move/", {"gallery": bobs.pk})

    assert response.status_code == 404
    generation.refresh_from_db()
    assert generation.gallery == Gallery.default_for(alice)


def test_the_move_form_partial_renders_for_a_studio_card(alice, posters):
    generation = make_generation(alice)
    request = RequestFactory().get("/?gallery=3")

    html = render_to_string(
        "gallery/_move_form.html",
        {"generation": generation, "galleries": Gallery.objects.editable_by(alice)},
        request=request,
    )

    assert f'action="/generations/{generation.pk}/move/"' in html
    assert 'name="next" value="/?gallery=3"' in html
    assert "selected>My images</option>" in html
    assert f'<option value="{posters.pk}">Posters</option>' in html


def image_files(image):
    return [image.original.name, image.thumbnail.name]


def test_the_galleries_page_takes_the_same_few_queries_however_many_galleries(
    alice_client, alice, django_assert_max_num_queries
):
    for n in range(6):
        gallery = Gallery.objects.create(owner=alice, name=f"Gallery {n}")
        make_generation(alice, gallery=gallery, images=2)
        ShareLink.objects.create(gallery=gallery)
    with django_assert_max_num_queries(8):
        assert alice_client.get("/galleries/").status_code == 200
