"""Each setting of a share link over real HTTP, as a signed-out visitor (httpx against the
live server, each client a browser with its own cookies)."""

import io
import re
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from html import unescape

import httpx
import pytest
from django.contrib.auth.hashers import make_password

from gallery.models import Gallery, ShareLink, Throttle
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db(transaction=True)

SLACK = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
PROMPTS = ["Zephyrine marmalade billboard campaign", "Quixotic turquoise saxophone poster"]


@pytest.fixture
def gallery(alice):
    gallery = Gallery.objects.create(owner=alice, name="Acme launch")
    for prompt in PROMPTS:
        make_generation(alice, gallery=gallery, prompt=prompt, images=2)
    return gallery


def browser(live_server, **headers):
    return httpx.Client(base_url=live_server.url, headers=headers, timeout=10)


def meta(html, name):
    found = re.search(rf'<meta (?:property|name)="{re.escape(name)}" content="([^"]*)">', html)
    return unescape(found.group(1)) if found else None


def csrf(html):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def every_url(link, gallery):
    """Every URL the link exposes, pages and files."""
    base = f"/s/{link.token}"
    urls = [f"{base}/", f"{base}/?page=1", f"{base}/download.zip"]
    for generation in gallery.generations.all():
        for image in generation.images.all():
            urls.append(f"{base}/images/{image.pk}/")
            for kind in ("original", "thumbnail", "display", "download"):
                urls.append(f"{base}/images/{image.pk}/{kind}/")
    return urls


def test_a_protected_link_shows_nothing_until_its_password_is_given(live_server, gallery):
    link = ShareLink.objects.create(gallery=gallery, password=make_password("harbour-lights"))
    image = gallery.generations.first().images.first()
    with browser(live_server) as visitor:
        page = visitor.get(f"/s/{link.token}/")
        assert page.status_code == 200
        assert 'name="password"' in page.text
        assert page.text.count("<input") == 2  # the password and the CSRF token
        for secret in ("Acme launch", *PROMPTS, "/thumbnail/", "/display/"):
            assert secret not in page.text
        # Its files and its zip answer nothing before the password either.
        for kind in ("original", "thumbnail", "display", "download"):
            assert visitor.get(f"/s/{link.token}/images/{image.pk}/{kind}/").status_code == 404
        assert visitor.get(f"/s/{link.token}/download.zip").status_code == 404

        wrong = visitor.post(
            f"/s/{link.token}/", data={"password": "guess", "csrfmiddlewaretoken": csrf(page.text)}
        )
        assert wrong.status_code == 200
        assert "That is not the password of this link" in wrong.text
        assert "Acme launch" not in wrong.text

        right = visitor.post(
            f"/s/{link.token}/",
            data={"password": "harbour-lights", "csrfmiddlewaretoken": csrf(wrong.text)},
        )
        assert right.status_code == 302
        gallery_page = visitor.get(right.headers["location"])
        assert "Acme launch" in gallery_page.text and PROMPTS[0] in gallery_page.text
        # Once per browser session: its image pages and files open now.
        assert visitor.get(f"/s/{link.token}/images/{image.pk}/").status_code == 200
        assert visitor.get(f"/s/{link.token}/images/{image.pk}/display/").status_code == 200
    with browser(live_server) as another:  # another browser: the password again
        assert 'name="password"' in another.get(f"/s/{link.token}/").text
    link.refresh_from_db()
    assert link.view_count == 1


def test_the_preview_of_a_protected_link_reveals_nothing_of_the_gallery(live_server, gallery):
    link = ShareLink.objects.create(gallery=gallery, password=make_password("harbour-lights"))
    with browser(live_server, **{"User-Agent": SLACK}) as slack:
        html = slack.get(f"/s/{link.token}/").text
    assert meta(html, "og:title") == "Protected link"
    assert meta(html, "og:description") == "This Darkroom link is protected by a password."
    assert meta(html, "og:image") is None and meta(html, "twitter:image") is None
    for secret in ("Acme launch", *PROMPTS, "/images/"):
        assert secret not in html, secret
    # An open link unfurls with its title and cover, as before.
    open_link = ShareLink.objects.create(gallery=gallery)
    with browser(live_server, **{"User-Agent": SLACK}) as slack:
        html = slack.get(f"/s/{open_link.token}/").text
        assert meta(html, "og:title") == "Acme launch"
        assert slack.get(meta(html, "og:image")).status_code == 200


def test_wrong_passwords_are_throttled_per_link_and_address(live_server, gallery, settings):
    settings.TRUSTED_PROXY_COUNT = 1  # so the test can speak from two addresses
    link = ShareLink.objects.create(gallery=gallery, password=make_password("harbour-lights"))
    other = ShareLink.objects.create(gallery=gallery, password=make_password("harbour-lights"))

    def attempt(client, target, password):
        form = client.get(f"/s/{target.token}/")
        return client.post(
            f"/s/{target.token}/",
            data={"password": password, "csrfmiddlewaretoken": csrf(form.text)},
        )

    with browser(live_server, **{"X-Forwarded-For": "203.0.113.7"}) as guesser:
        answers = [attempt(guesser, link, f"guess-{n}").status_code for n in range(5)]
        assert answers == [200] * 5
        refused = attempt(guesser, link, "harbour-lights")  # even the right one, now
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "Too many wrong passwords" in refused.text
        assert "Acme launch" not in refused.text
        assert attempt(guesser, other, "harbour-lights").status_code == 302  # another link
    with browser(live_server, **{"X-Forwarded-For": "198.51.100.9"}) as colleague:
        assert attempt(colleague, link, "harbour-lights").status_code == 302  # another address
    assert "203.0.113.7" not in str(list(Throttle.objects.values()))


def test_with_downloads_off_no_original_download_or_zip_goes_out(live_server, gallery):
    link = ShareLink.objects.create(gallery=gallery, allow_downloads=False)
    with browser(live_server) as visitor:
        answers = {url: visitor.get(url) for url in every_url(link, gallery)}
    for url, response in answers.items():
        if url.endswith(("/original/", "/download/", "download.zip")):
            assert response.status_code == 404, url
        else:
            assert response.status_code == 200, url
    pages = [r.text for u, r in answers.items() if r.headers["content-type"].startswith("text/")]
    for html in pages:
        assert "/original/" not in html and "/download/" not in html
        assert "download.zip" not in html and ">Download" not in html
    for url, response in answers.items():
        if url.endswith("/display/"):
            assert response.headers["content-type"] == "image/webp"


def test_with_prompts_off_no_prompt_text_is_anywhere(live_server, gallery):
    link = ShareLink.objects.create(gallery=gallery, show_prompts=False)
    with browser(live_server) as visitor:
        responses = [visitor.get(url) for url in every_url(link, gallery)]
    with browser(live_server, **{"User-Agent": SLACK}) as slack:
        responses += [slack.get(url) for url in every_url(link, gallery)[:4]]
    assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
    words = {word.lower() for prompt in PROMPTS for word in prompt.split() if len(word) > 4}
    for response in responses:
        found = response.content + str(response.headers).encode()
        if response.headers["content-type"] == "application/zip":
            names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
            assert len(names) == 4 and all(re.fullmatch(r"image-\d+\.png", n) for n in names)
        for word in words:
            assert word.encode() not in found.lower(), (response.url, word)


def test_the_view_limit_is_reached_at_exactly_its_number(live_server, gallery):
    link = ShareLink.objects.create(gallery=gallery, max_views=3)
    image = gallery.generations.first().images.first()
    visitors = [browser(live_server) for _ in range(4)]
    try:
        statuses = [visitor.get(f"/s/{link.token}/").status_code for visitor in visitors]
        assert statuses == [200, 200, 200, 404]
        assert "This link has no views left" in visitors[3].get(f"/s/{link.token}/").text
        late_file = visitors[3].get(f"/s/{link.token}/images/{image.pk}/thumbnail/")
        assert late_file.status_code == 404
        # Those who used a view keep seeing the gallery, its images and files.
        for visitor in visitors[:3]:
            assert visitor.get(f"/s/{link.token}/").status_code == 200
            assert visitor.get(f"/s/{link.token}/images/{image.pk}/").status_code == 200
            assert visitor.get(f"/s/{link.token}/images/{image.pk}/display/").status_code == 200
    finally:
        for visitor in visitors:
            visitor.close()
    link.refresh_from_db()
    assert link.view_count == 3


@pytest.mark.postgres
def test_a_two_view_link_unfurled_by_slack_then_opened_by_three_visitors(live_server, gallery):
    link = ShareLink.objects.create(gallery=gallery, max_views=2)
    url = f"/s/{link.token}/"
    statuses = []
    with browser(live_server, **{"User-Agent": SLACK}) as slack:
        statuses.append(slack.get(url).status_code)
        assert slack.head(url).status_code == 200
    for _ in range(3):
        with browser(live_server) as visitor:
            statuses.append(visitor.get(url).status_code)
    assert statuses == [200, 200, 200, 404]


@pytest.mark.postgres  # the view is taken by a conditional UPDATE, on either database
def test_visitors_arriving_together_never_get_more_views_than_the_limit(live_server, gallery):
    # Eight browsers released at once; the live server answers each on a thread with its
    # own database connection, so the views are taken in the database, concurrently.
    link = ShareLink.objects.create(gallery=gallery, max_views=3)
    url = f"{live_server.url}/s/{link.token}/"
    start = threading.Barrier(8)

    def open_link(_):
        with httpx.Client(timeout=30) as visitor:
            start.wait()
            return visitor.get(url).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(open_link, range(8)))
    assert sorted(statuses) == [200] * 3 + [404] * 5
    link.refresh_from_db()
    assert link.view_count == 3
