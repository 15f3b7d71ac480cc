"""The studio's views: generate, live cards, the gallery and its actions, image detail.

Rows are built directly here; tests/test_browser_studio.py drives the real pipeline.
"""

import io
import re
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image as PillowImage

from gallery import tasks
from gallery.models import Gallery, Generation, Image
from gallery.templatetags.studio import card_version
from gallery.views.studio import PAGE_SIZE

S = Generation.Status
HTMX = {"HTTP_HX_REQUEST": "true"}


def htmx(target):
    return {**HTMX, "HTTP_HX_TARGET": target}


def png(width=64, height=64):
    buffer = io.BytesIO()
    PillowImage.new("RGB", (width, height), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def make_generation(
    owner, *, status=S.COMPLETED, images=None, files=False, favourite=False, **fields
):
    """A generation row as the pipeline leaves it; COMPLETED ones get their images."""
    fields.setdefault("prompt", "a lighthouse at dusk")
    fields.setdefault("gallery", Gallery.default_for(owner))
    generation = Generation.objects.create(owner=owner, status=status, **fields)
    if favourite:
        generation.set_favourite(owner, True)
    count = generation.num_images if images is None and status == S.COMPLETED else images or 0
    for index in range(count):
        original = thumbnail = f"{generation.file_stem(index)}.png"
        if files:
            original = default_storage.save(original, ContentFile(png(1024, 1024)))
            thumbnail = default_storage.save(
                f"{generation.file_stem(index)}-thumb.webp", ContentFile(png())
            )
        Image.objects.create(
            generation=generation,
            index=index,
            original=original,
            thumbnail=thumbnail,
            width=1024,
            height=1536 if generation.image_size == "1024x1536" else 1024,
            content_type="image/png",
            size_bytes=2_048_576,
        )
    return generation


@pytest.fixture
def enqueued(monkeypatch):
    """The generations the views handed to the pipeline (nothing really runs here)."""
    calls = []
    monkeypatch.setattr(tasks, "enqueue_submit", calls.append)
    return calls


def prompt_in_form(html):
    return re.search(r"<textarea name=\"prompt\"[^>]*>\s*(.*?)</textarea>", html, re.S).group(1)


def cards(response):
    return re.findall(r'<article id="generation-(\d+)"', response.content.decode())


def card_on_page(client, generation, url="/"):
    """The card of `generation` as the studio page renders it."""
    html = client.get(url).content.decode()
    pattern = rf'<article id="generation-{generation.pk}".*?</article>'
    return re.search(pattern, html, re.S).group()


def version(generation, user):
    """The version the page shows of a card: card_version as seen by `user`."""
    return card_version(Generation.objects.visible_to(user).get(pk=generation.pk))


def updates(client, *, watched=(), known=(), anchor=None, query=""):
    """The page's live-update request, as static/js/darkroom.js sends it."""
    params = [("w", f"{pk}:{v}") for pk, v in watched] + [("k", pk) for pk in known]
    if anchor is not None:
        params.append(("anchor", anchor))
    params_text = "&".join(f"{name}={value}" for name, value in params)
    return client.get(f"/updates/?{query}&{params_text}", **htmx("live-updates"))


# -- the page and the form ------------------------------------------------------------------


def test_it_sends_visitors_to_sign_in(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_form_has_every_parameter_with_labels_and_contract_defaults(alice_client):
    response = alice_client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    for name, label in [
        ("prompt", "Prompt"),
        ("image_size", "Size"),
        ("background", "Background"),
        ("quality", "Quality"),
        ("num_images", "Number of images"),
        ("output_format", "Format"),
    ]:
        assert f'name="{name}"' in html
        assert re.search(rf'<label for="id_{name}"[^>]*>{label}', html), name
    for name, default in [
        ("image_size", "1024x1024"),
        ("background", "auto"),
        ("quality", "high"),
        ("num_images", "1"),
        ("output_format", "png"),
    ]:
        select = re.search(rf'<select name="{name}".*?</select>', html, re.S).group()
        assert f'<option value="{default}" selected>' in select, name
    assert re.search(
        r'<button type="submit"[^>]*>\s*<svg.*?</svg>.*?'
        r'<span class="generate__label">Generate</span>',
        html,
        re.S,
    )
    assert 'hx-post="/generate/"' in html and 'action="/generate/"' in html


def test_generate_with_htmx_keeps_the_prompt_and_sends_the_new_card_to_the_top(
    alice, alice_client, enqueued
):
    data = {
        "prompt": "a red kite over the dunes",
        "image_size": "1536x1024",
        "background": "opaque",
        "quality": "low",
        "num_images": "2",
        "output_format": "webp",
    }
    response = alice_client.post("/generate/", data, **htmx("generate-form"))

    generation = Generation.objects.get()
    assert (generation.owner, generation.status) == (alice, S.PENDING)
    assert generation.provider_params() == {**data, "num_images": 2}
    assert generation.gallery == Gallery.default_for(alice)
    assert enqueued == [generation]
    html = response.content.decode()
    # The form is left as it is (prompt kept for the next try): only what changed comes.
    assert response["HX-Reswap"] == "none"
    assert 'id="generate-form"' not in html
    assert '<div id="price" hx-swap-oob="innerHTML">' in html
    assert 'hx-swap-oob="afterbegin:#generation-grid"' in html
    assert f'id="generation-{generation.pk}"' in html and 'data-status="PENDING"' in html


def test_generate_without_javascript_redirects_to_the_form_filled_with_those_settings(
    alice_client, enqueued
):
    data = {"prompt": "a quiet harbour", "image_size": "1024x1536", "background": "auto"}
    data |= {"quality": "medium", "num_images": "1", "output_format": "jpeg"}
    response = alice_client.post("/generate/", data)

    generation = Generation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/?use={generation.pk}"
    page = alice_client.get(response["Location"]).content.decode()
    assert prompt_in_form(page) == "a quiet harbour"
    assert '<option value="1024x1536" selected>' in page
    assert f'id="generation-{generation.pk}"' in page


@pytest.mark.parametrize("extra", [HTMX, {}], ids=["htmx", "no-js"])
def test_bad_input_shows_field_errors_in_place_and_creates_nothing(alice_client, enqueued, extra):
    data = {"prompt": "   ", "image_size": "999x999", "background": "transparent"}
    data |= {"quality": "high", "num_images": "9", "output_format": "jpeg"}
    response = alice_client.post("/generate/", data, **extra)

    assert response.status_code == 200
    html = response.content.decode()
    assert "the prompt can&#x27;t be empty" in html
    assert "Select a valid choice. 999x999 is not one of the available choices." in html
    assert "Select a valid choice. 9 is not one of the available choices." in html
    assert re.search(r'<textarea name="prompt"[^>]*aria-invalid="true"', html)
    assert Generation.objects.count() == 0 and enqueued == []


def test_transparent_jpeg_is_refused_beside_the_format(alice_client, enqueued):
    data = {"prompt": "a glass bottle", "image_size": "1024x1024", "background": "transparent"}
    data |= {"quality": "high", "num_images": "1", "output_format": "jpeg"}
    response = alice_client.post("/generate/", data, **HTMX)
    assert "JPEG has no transparency" in response.content.decode()
    assert Generation.objects.count() == 0


def test_use_these_settings_fills_the_form_from_a_past_generation(alice, alice_client):
    past = make_generation(
        alice, prompt="moss on old stone", image_size="1024x1536", quality="low", num_images=3
    )
    response = alice_client.get(f"/?use={past.pk}", **htmx("generate-form"))
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="generate-form"')
    assert prompt_in_form(html) == "moss on old stone"
    assert '<option value="1024x1536" selected>' in html
    assert '<option value="low" selected>' in html
    assert '<option value="3" selected>' in html
    assert "<article" not in html  # the form only, not the gallery


def test_use_these_settings_refuses_another_users_generation(alice, bob, client):
    theirs = make_generation(alice)
    client.force_login(bob)
    assert client.get(f"/?use={theirs.pk}").status_code == 404


# -- cards and their live status ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fields", "badge"),
    [
        (S.PENDING, {}, "Queued"),
        (S.SUBMITTING, {}, "Queued"),
        (S.IN_QUEUE, {"queue_position": 4}, "Queued · position 4"),
        (S.IN_PROGRESS, {"estimated_wait_minutes": 2.4}, "In progress · about 2 min"),
        (S.IN_PROGRESS, {"estimated_wait_minutes": 0.3}, "In progress · under a minute"),
        (S.DOWNLOADING, {}, "Saving images"),
        (S.COMPLETED, {}, "Completed"),
        (S.FAILED, {"error": "The provider could not make this image: too dark"}, "Failed"),
        (S.CANCELLED, {}, "Cancelled"),
    ],
)
def test_a_card_carries_its_status_and_a_readable_badge(alice, alice_client, status, fields, badge):
    generation = make_generation(alice, status=status, **fields)
    html = card_on_page(alice_client, generation)
    assert f'data-status="{status}"' in html
    text = re.sub(
        r"<[^>]+>",
        "",
        re.search(r'<span class="badge[^"]*">.*?</span>\s*<time', html, re.S).group(),
    )
    assert " ".join(text.split()).startswith(badge)


def test_a_failed_card_shows_the_reason_and_a_retry_button(alice, alice_client):
    generation = make_generation(alice, status=S.FAILED, error="Simulated failure: it asked")
    html = card_on_page(alice_client, generation)
    assert '<p class="card__error">Simulated failure: it asked</p>' in html
    assert f'hx-post="/generations/{generation.pk}/retry/"' in html
    assert "Retry" in html


def test_cards_do_not_poll_themselves_the_page_asks_once_for_all(alice, alice_client):
    waiting = [make_generation(alice, status=S.IN_QUEUE) for _ in range(12)]
    done = make_generation(alice, status=S.COMPLETED)
    html = alice_client.get("/").content.decode()
    assert 'hx-trigger="every' not in html
    assert html.count('hx-trigger="darkroom:tick"') == 1  # the one live-update request
    live = re.search(r'<div id="live-updates"[^>]*>', html).group()
    assert 'hx-get="/updates/?"' in live and f'data-anchor="{done.pk}"' in live
    for generation in waiting:  # what the page names in its request
        card = re.search(rf'<article id="generation-{generation.pk}"[^>]*>', html).group()
        assert f'data-version="{version(generation, alice)}"' in card
    done_card = re.search(rf'<article id="generation-{done.pk}"[^>]*>', html).group()
    assert "data-version" not in done_card


def test_the_update_answers_204_while_nothing_on_the_page_changed(alice, alice_client):
    generation = make_generation(alice, status=S.IN_PROGRESS, estimated_wait_minutes=1.5)
    seen = [(generation.pk, version(generation, alice))]
    assert updates(alice_client, watched=seen, anchor=generation.pk).status_code == 204

    # The poller records progress that changes nothing visible: still 204.
    generation.record_progress(
        S.IN_PROGRESS, queue_position=None, estimated_wait_minutes=1.5, next_in=1
    )
    assert updates(alice_client, watched=seen, anchor=generation.pk).status_code == 204

    generation.record_progress(
        S.IN_PROGRESS, queue_position=None, estimated_wait_minutes=0.5, next_in=1
    )
    response = updates(alice_client, watched=seen, anchor=generation.pk)
    assert response.status_code == 200
    html = response.content.decode()
    assert "under a minute" in html
    assert f'<article id="generation-{generation.pk}"' in html and 'hx-swap-oob="true"' in html


def test_a_finished_card_comes_back_once_without_a_version_so_the_page_stops_asking(
    alice, alice_client
):
    generation = make_generation(alice, status=S.IN_PROGRESS)
    seen = [(generation.pk, version(generation, alice))]
    Generation.objects.filter(pk=generation.pk).update(status=S.COMPLETED)
    response = updates(alice_client, watched=seen, anchor=generation.pk)
    card = re.search(r"<article[^>]*>", response.content.decode()).group()
    assert 'data-status="COMPLETED"' in card and "data-version" not in card


def test_cards_new_to_the_view_arrive_at_the_top_once(alice, alice_client):
    old = make_generation(alice)
    first = make_generation(alice, status=S.PENDING, prompt="made in another tab")
    second = make_generation(alice, status=S.PENDING, prompt="and another")

    response = updates(alice_client, anchor=old.pk)
    html = response.content.decode()
    assert 'hx-swap-oob="afterbegin:#generation-grid"' in html
    assert cards(response) == [str(second.pk), str(first.pk)]  # newest first, as the grid
    # The page now has them (one still unfinished, one named as known): nothing again.
    watched = [(second.pk, version(second, alice))]
    assert (
        updates(alice_client, watched=watched, known=[first.pk], anchor=old.pk).status_code == 204
    )


def test_a_card_the_caller_may_no_longer_see_is_removed_from_the_page(alice, bob, client):
    shared = Gallery.objects.create(owner=alice, name="Team")
    shared.add_member(bob, "viewer", added_by=alice)
    generation = make_generation(alice, gallery=shared, status=S.IN_QUEUE)
    client.force_login(bob)
    seen = [(generation.pk, version(generation, bob))]
    shared.members.all().delete()
    html = updates(client, watched=seen).content.decode()
    assert f'<div id="generation-{generation.pk}" hx-swap-oob="delete"></div>' in html
    assert "made" not in html and "<article" not in html


def test_updates_for_a_gallery_no_longer_shared_say_so_and_end(alice, bob, client):
    shared = Gallery.objects.create(owner=alice, name="Team plans")
    make_generation(alice, gallery=shared, prompt="the team's plan")
    client.force_login(bob)
    response = updates(client, query=f"gallery={shared.pk}", anchor=0)
    html = response.content.decode()
    assert response.status_code == 200
    assert '<div id="gallery" class="studio-gallery" hx-swap-oob="true">' in html
    assert "This gallery is no longer shared with you." in html
    assert "live-updates" not in html and "the team&#x27;s plan" not in html


def test_the_update_costs_the_same_queries_for_one_card_as_for_a_page_of_them(alice, alice_client):
    def queries(count):
        cards = [make_generation(alice, status=S.IN_QUEUE) for _ in range(count)]
        seen = [(g.pk, "stale") for g in cards]  # every card changed: all are rendered
        with CaptureQueriesContext(connection) as captured:
            response = updates(alice_client, watched=seen, anchor=cards[-1].pk)
        assert response.status_code == 200 and len(response.content) > 0
        return len(captured)

    alice_client.get("/")  # warm the session
    assert queries(1) == queries(PAGE_SIZE)


def test_thumbnails_are_lazy_and_sized_so_nothing_jumps(alice, alice_client):
    generation = make_generation(alice, image_size="1024x1536", num_images=2)
    html = alice_client.get("/").content.decode()
    for image in generation.images.all():
        tag = re.search(
            rf'<img src="/media/images/{image.pk}/thumbnail/"[^>]*>', html, re.S
        ).group()
        assert 'loading="lazy"' in tag
        assert 'width="1024"' in tag and 'height="1536"' in tag
        assert f'href="/images/{image.pk}/"' in html


# -- the gallery ---------------------------------------------------------------------------


def test_the_studio_costs_the_same_queries_for_1000_generations_as_for_10(alice, alice_client):
    def page_queries():
        with CaptureQueriesContext(connection) as queries:
            response = alice_client.get("/")
        assert response.status_code == 200
        return len(queries)

    gallery = Gallery.default_for(alice)
    alice_client.get("/")

    def add(count):
        rows = Generation.objects.bulk_create(
            Generation(
                owner=alice, gallery=gallery, prompt=f"p{i}", status=S.COMPLETED, num_images=2
            )
            for i in range(count)
        )
        Image.objects.bulk_create(
            Image(
                generation=g,
                index=i,
                original="x.png",
                thumbnail="x.webp",
                width=1024,
                height=1024,
                content_type="image/png",
                size_bytes=1,
            )
            for g in rows
            for i in range(2)
        )

    add(10)
    few = page_queries()
    add(990)
    assert page_queries() == few
    # session, user, generations, their images, galleries (once for both selects), usage (2:
    # the month's total row beside the quota, and the few requests not sent yet; never the
    # month's generations), the price panel's limits (1: quota, team budget, approval)
    assert few == 8


@pytest.mark.parametrize("url", ["/", "/?gallery={shared}"])
def test_the_studio_costs_the_same_queries_for_many_galleries_and_members(
    alice, bob, django_user_model, alice_client, url
):
    shared = Gallery.objects.create(owner=bob, name="Bob's team board")
    shared.add_member(alice, "contributor", added_by=bob)
    url = url.format(shared=shared.pk)

    def page_queries():
        with CaptureQueriesContext(connection) as queries:
            response = alice_client.get(url)
        assert response.status_code == 200
        return len(queries)

    def add_galleries_and_members(count, start):
        for i in range(start, start + count):
            mate = django_user_model.objects.create_user(f"mate{i}")
            theirs = Gallery.objects.create(
                owner=mate, name=f"Board {i}", visibility=Gallery.Visibility.TEAM
            )
            theirs.add_member(alice, "viewer" if i % 2 else "contributor", added_by=mate)
            shared.add_member(mate, "viewer", added_by=bob)
            Gallery.objects.create(owner=alice, name=f"Mine {i}")
            make_generation(mate, gallery=shared)

    alice_client.get(url)
    add_galleries_and_members(1, 0)
    few = page_queries()
    add_galleries_and_members(10, 1)
    assert page_queries() == few


def test_the_gallery_is_newest_first_and_loads_more_with_htmx(alice, alice_client):
    generations = [make_generation(alice, prompt=f"picture {i}") for i in range(PAGE_SIZE + 5)]
    newest_first = [str(g.pk) for g in reversed(generations)]

    first = alice_client.get("/")
    assert cards(first) == newest_first[:PAGE_SIZE]
    html = first.content.decode()
    more = re.search(r'<div id="load-more"[^>]*hx-get="([^"]+)"[^>]*hx-trigger="revealed"', html)
    assert more, "the first page ends in a load-more sentinel"
    url = more.group(1).replace("&amp;", "&")
    assert f'href="{more.group(1)}"' in html  # and a plain link without JavaScript

    # Meanwhile a new generation appears at the top: the next page neither repeats nor skips.
    make_generation(alice, prompt="brand new")
    second = alice_client.get(url, **htmx("load-more"))
    assert cards(second) == newest_first[PAGE_SIZE:]
    assert "load-more" not in second.content.decode()
    assert "<html" not in second.content.decode()


def test_search_finds_prompts(alice, alice_client):
    kite = make_generation(alice, prompt="A red KITE over dunes")
    make_generation(alice, prompt="a lighthouse")
    response = alice_client.get("/?q=kite", **htmx("gallery"))
    assert cards(response) == [str(kite.pk)]
    assert response.content.decode().lstrip().startswith('<div id="gallery"')


def test_filters_status_size_format_favourites_and_gallery(alice, alice_client):
    posters = Gallery.objects.create(owner=alice, name="Posters")
    failed = make_generation(alice, status=S.FAILED)
    queued = make_generation(alice, status=S.IN_QUEUE)
    wide = make_generation(alice, image_size="1536x1024")
    webp = make_generation(alice, output_format="webp")
    starred = make_generation(alice, favourite=True)
    poster = make_generation(alice, gallery=posters)

    def shown(query):
        return cards(alice_client.get(f"/?{query}"))

    assert shown("status=FAILED") == [str(failed.pk)]
    assert shown("status=active") == [str(queued.pk)]
    assert shown("image_size=1536x1024") == [str(wide.pk)]
    assert shown("output_format=webp") == [str(webp.pk)]
    assert shown("favourite=on") == [str(starred.pk)]
    assert shown(f"gallery={posters.pk}") == [str(poster.pk)]
    assert len(shown("status=nonsense")) == 6  # a bad value drops only that filter


def test_another_users_private_gallery_answers_404(alice, bob, client):
    make_generation(alice)
    client.force_login(bob)
    theirs = Gallery.default_for(alice)
    assert client.get(f"/?gallery={theirs.pk}").status_code == 404
    assert client.get("/?gallery=nonsense").status_code == 404


def test_an_empty_studio_invites_a_first_image_and_empty_filters_say_so(alice_client):
    assert "No images yet." in alice_client.get("/").content.decode()
    assert "Nothing matches these filters." in alice_client.get("/?q=zebra").content.decode()


def test_only_the_owners_generations_are_shown(alice, bob, alice_client):
    mine = make_generation(alice)
    make_generation(bob)
    assert cards(alice_client.get("/")) == [str(mine.pk)]


def test_responses_vary_on_the_htmx_headers(alice_client):
    assert {"HX-Request", "HX-Target"} <= {
        h.strip() for h in alice_client.get("/")["Vary"].split(",")
    }


# -- card actions ---------------------------------------------------------------------------


def test_retry_requeues_a_failed_generation_with_a_fresh_request(alice, alice_client, enqueued):
    generation = make_generation(alice, status=S.FAILED, error="boom", request_id="old-id")
    response = alice_client.post(f"/generations/{generation.pk}/retry/", **HTMX)

    generation.refresh_from_db()
    assert (generation.status, generation.error, generation.request_id) == (S.PENDING, "", "")
    assert enqueued == [generation]
    assert response.status_code == 200
    assert 'data-status="PENDING"' in response.content.decode()


def test_retry_of_a_completed_generation_changes_nothing(alice, alice_client, enqueued):
    generation = make_generation(alice, status=S.COMPLETED)
    response = alice_client.post(f"/generations/{generation.pk}/retry/", **HTMX)
    assert 'data-status="COMPLETED"' in response.content.decode()
    generation.refresh_from_db()
    assert generation.status == S.COMPLETED and enqueued == []


def test_retry_without_javascript_returns_to_the_studio(alice, alice_client, enqueued):
    generation = make_generation(alice, status=S.CANCELLED)
    response = alice_client.post(f"/generations/{generation.pk}/retry/")
    assert (response.status_code, response["Location"]) == (302, "/")
    assert len(enqueued) == 1


def test_cancel_stops_waiting(alice, alice_client):
    generation = make_generation(alice, status=S.IN_PROGRESS)
    response = alice_client.post(f"/generations/{generation.pk}/cancel/", **HTMX)
    generation.refresh_from_db()
    assert generation.status == S.CANCELLED
    assert 'data-status="CANCELLED"' in response.content.decode()


def test_cancel_after_the_images_arrived_changes_nothing(alice, alice_client):
    generation = make_generation(alice, status=S.DOWNLOADING)
    alice_client.post(f"/generations/{generation.pk}/cancel/", **HTMX)
    generation.refresh_from_db()
    assert generation.status == S.DOWNLOADING


def test_favourite_sets_the_value_asked_for(alice, alice_client):
    generation = make_generation(alice)
    for _ in range(2):  # a double click stays a favourite
        response = alice_client.post(
            f"/generations/{generation.pk}/favourite/", {"favourite": "1"}, **HTMX
        )
        assert alice.favourites.filter(generation=generation).count() == 1
    assert 'aria-pressed="true"' in response.content.decode()
    alice_client.post(f"/generations/{generation.pk}/favourite/", {"favourite": "0"}, **HTMX)
    assert not alice.favourites.exists()


def test_favourite_without_javascript_goes_back_to_a_safe_next(alice, alice_client):
    generation = make_generation(alice)
    url = f"/generations/{generation.pk}/favourite/"
    back = alice_client.post(url, {"favourite": "1", "next": "/images/1/"})
    assert back["Location"] == "/images/1/"
    elsewhere = alice_client.post(url, {"favourite": "1", "next": "https://evil.example/"})
    assert elsewhere["Location"] == "/"


def test_delete_moves_a_finished_generation_to_the_trash_with_an_undo(alice, alice_client):
    generation = make_generation(alice, files=True, num_images=2)
    names = [
        name
        for image in generation.images.all()
        for name in (image.original.name, image.thumbnail.name)
    ]

    page = f"/?gallery={generation.gallery_id}"
    current = {"HTTP_HX_CURRENT_URL": f"http://testserver{page}"}
    response = alice_client.post(f"/generations/{generation.pk}/delete/", **HTMX, **current)

    # The card swaps itself out; the toast comes out of band, its Undo restoring this one
    # and coming back to the page the card was on.
    html = response.content.decode()
    assert f'name="next" value="{page}"' in html
    assert response.status_code == 200 and html.lstrip().startswith('<div id="toast"')
    assert 'hx-swap-oob="innerHTML"' in html and "Moved to the trash." in html
    assert 'action="/trash/restore/"' in html
    assert f'name="g" value="{generation.pk}"' in html
    generation.refresh_from_db()
    assert generation.is_trashed
    assert all(default_storage.exists(name) for name in names)  # until it is emptied
    assert f"generation-{generation.pk}" not in alice_client.get("/").content.decode()


def test_delete_offers_a_confirmation_not_a_one_click_loss(alice, alice_client):
    generation = make_generation(alice)
    html = alice_client.get("/").content.decode()
    confirm = re.search(r'<details class="confirm">.*?</details>', html, re.S).group()
    assert "to the trash?" in confirm
    assert f'hx-post="/generations/{generation.pk}/delete/"' in confirm


def test_delete_refuses_an_unfinished_generation(alice, alice_client):
    generation = make_generation(alice, status=S.IN_PROGRESS)
    response = alice_client.post(f"/generations/{generation.pk}/delete/", **HTMX)
    assert response.status_code == 409
    assert Generation.objects.filter(pk=generation.pk).exists()


def test_delete_without_javascript_redirects_with_a_message(alice, alice_client):
    generation = make_generation(alice, status=S.FAILED)
    response = alice_client.post(f"/generations/{generation.pk}/delete/", follow=True)
    assert response.redirect_chain == [("/", 302)]
    html = response.content.decode()
    assert "Moved to the trash." in html and 'action="/trash/restore/"' in html
    # Shown once: the next page has no toast left.
    assert "Moved to the trash." not in alice_client.get("/").content.decode()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/generations/{pk}/"),
        ("post", "/generations/{pk}/retry/"),
        ("post", "/generations/{pk}/cancel/"),
        ("post", "/generations/{pk}/favourite/"),
        ("post", "/generations/{pk}/delete/"),
    ],
)
def test_it_refuses_other_users_generation(alice, bob, client, enqueued, method, path):
    generation = make_generation(alice, status=S.FAILED)
    client.force_login(bob)
    response = getattr(client, method)(path.format(pk=generation.pk), **HTMX)
    assert response.status_code == 404
    generation.refresh_from_db()
    assert generation.status == S.FAILED and enqueued == []
    assert not bob.favourites.exists()


@pytest.mark.parametrize("path", ["/generate/", "/generations/1/retry/", "/generations/1/delete/"])
def test_actions_refuse_get(alice_client, path):
    assert alice_client.get(path).status_code == 405


# -- detail pages ---------------------------------------------------------------------------


def test_the_image_detail_shows_every_parameter_and_the_metadata(alice, alice_client):
    generation = make_generation(
        alice,
        prompt="a lighthouse at dusk\nin watercolour",
        background="opaque",
        quality="medium",
        num_images=2,
        request_id="req-7f3a",
        processing_time_ms=4320,
        provider_metadata={"seed": 1234, "quality": "medium"},
        completed_at=timezone.now(),
    )
    image = generation.images.get(index=1)
    response = alice_client.get(f"/images/{image.pk}/")
    html = response.content.decode()

    assert response.status_code == 200
    # Stored before display renditions: the original stands in for one beside the thumbnail.
    media = f"/media/images/{image.pk}"
    assert (
        f'<img src="{media}/original/" srcset="{media}/thumbnail/ 512w, {media}/original/ 1024w"'
        in html
    )
    assert 'width="1024" height="1024"' in html
    assert 'id="prompt-text">a lighthouse at dusk\nin watercolour</p>' in html
    assert 'data-copy="prompt-text"' in html
    assert f'href="/media/images/{image.pk}/download/"' in html
    assert f'href="/?use={generation.pk}#generate-form"' in html
    for text in [
        "Square · 1024×1024",
        "Opaque",
        "Medium",
        "PNG",
        "1024 × 1024 px",
        "2.0\xa0MB",
        "2048576 bytes",
        "image/png",
        "4.3 s",
        "req-7f3a",
        "Image 2 of 2",
        "seed",
        "1234",
    ]:
        assert text in html, text


def test_the_detail_page_moves_its_generation_to_another_gallery(alice, alice_client):
    generation = make_generation(alice, prompt="a tram on a hill")
    trips = Gallery.objects.create(owner=alice, name="Trips")
    image = generation.images.get()
    html = alice_client.get(f"/images/{image.pk}/").content.decode()
    assert f'action="/generations/{generation.pk}/move/"' in html
    assert ">Trips</option>" in html

    response = alice_client.post(
        f"/generations/{generation.pk}/move/",
        {"gallery": trips.pk, "next": f"/images/{image.pk}/"},
    )
    assert response["Location"] == f"/images/{image.pk}/"
    generation.refresh_from_db()
    assert generation.gallery == trips


def test_the_detail_steps_to_newer_and_older_images_within_the_gallery(alice, alice_client):
    now = timezone.now()
    older = make_generation(alice, prompt="older")
    pair = make_generation(alice, prompt="pair", num_images=2)
    newer = make_generation(alice, prompt="newer")
    elsewhere = make_generation(alice, gallery=Gallery.objects.create(owner=alice, name="Other"))
    for age, generation in enumerate([elsewhere, newer, pair, older]):
        Generation.objects.filter(pk=generation.pk).update(created_at=now - timedelta(minutes=age))
    first, second = pair.images.order_by("index")

    def steps(image):
        html = alice_client.get(f"/images/{image.pk}/").content.decode()
        prev = re.search(r'rel="prev" href="/images/(\d+)/"', html)
        nxt = re.search(r'rel="next" href="/images/(\d+)/"', html)
        return (prev and int(prev.group(1)), nxt and int(nxt.group(1)))

    assert steps(newer.images.get()) == (None, first.pk)
    assert steps(first) == (newer.images.get().pk, second.pk)
    assert steps(second) == (first.pk, older.images.get().pk)
    assert steps(older.images.get()) == (second.pk, None)


def test_it_refuses_other_users_image(alice, bob, client):
    image = make_generation(alice).images.get()
    client.force_login(bob)
    assert client.get(f"/images/{image.pk}/").status_code == 404


def test_a_generation_opens_on_its_first_image(alice, alice_client):
    generation = make_generation(alice, num_images=3)
    response = alice_client.get(f"/generations/{generation.pk}/")
    assert response["Location"] == f"/images/{generation.images.get(index=0).pk}/"


def test_a_generation_without_images_shows_its_status_and_parameters(alice, alice_client):
    generation = make_generation(alice, status=S.FAILED, error="Simulated failure")
    html = alice_client.get(f"/generations/{generation.pk}/").content.decode()
    assert "Failed" in html and "Simulated failure" in html and "No image was made." in html
    assert f'action="/generations/{generation.pk}/retry/"' in html


def test_the_image_detail_shows_the_display_rendition_and_the_original_only_on_download(
    alice, alice_client
):
    from tests.image_factories import make_generation as make_stored_generation

    image = make_stored_generation(alice, images=1).images.get()
    html = alice_client.get(f"/images/{image.pk}/").content.decode()
    media = f"/media/images/{image.pk}"
    assert f'<img src="{media}/display/" srcset="{media}/display/ 96w"' in html
    assert f"{media}/original/" not in html
    assert f'href="{media}/download/"' in html
    response = alice_client.get(f"{media}/display/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"


def test_reusing_a_teammates_settings_keeps_the_gallery_a_contributor_adds_to(alice, bob, client):
    # "Use these settings" on a teammate's card: the preset was lost (the check asked
    # whether bob may *remove* alice's generation, not whether he may add to its gallery).
    campaign = Gallery.objects.create(owner=alice, name="Campaign")
    campaign.add_member(bob, "contributor", added_by=alice)
    hers = make_generation(alice, gallery=campaign, prompt="a teammate’s poster")
    client.force_login(bob)

    html = client.get(f"/?use={hers.pk}", **htmx("generate-form")).content.decode()

    assert f'<option value="{campaign.pk}" selected>' in html
    assert prompt_in_form(html) == "a teammate’s poster"


def test_reusing_settings_from_a_gallery_one_only_views_falls_back_to_ones_own(alice, bob, client):
    shown = Gallery.objects.create(owner=alice, name="Shown")
    shown.add_member(bob, "viewer", added_by=alice)
    hers = make_generation(alice, gallery=shown)
    client.force_login(bob)

    html = client.get(f"/?use={hers.pk}", **htmx("generate-form")).content.decode()

    gallery_select = re.search(r'<select name="gallery".*?</select>', html, re.S).group()
    assert f'value="{shown.pk}"' not in gallery_select  # not offered: he can't add to it
    assert prompt_in_form(html) == hers.prompt
