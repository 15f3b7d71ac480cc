"""Compare two images (issue 20): side by side and one over the other, their settings and
prompts with what differs marked."""

import re

import pytest

from gallery.compare import prompt_diff
from gallery.models import Gallery, Generation
from tests.image_factories import make_generation

pytestmark = pytest.mark.django_db


def marked(pieces):
    return [piece.text for piece in pieces if piece.changed]


def test_prompts_differ_word_by_word():
    left, right = prompt_diff("a red kite at dusk, watercolour", "a blue kite at dawn, watercolour")
    assert marked(left) == ["red", "dusk,"]
    assert marked(right) == ["blue", "dawn,"]
    assert "".join(p.text for p in left) == "a red kite at dusk, watercolour"  # nothing lost


def test_an_added_phrase_is_marked_only_on_its_side():
    left, right = prompt_diff("a kite", "a kite over the dunes")
    assert marked(left) == []
    assert marked(right) == ["over", "the", "dunes"]


def test_the_page_marks_what_differs(alice, alice_client):
    posters = Gallery.objects.create(owner=alice, name="Posters")
    a = make_generation(alice, prompt="a red kite at dusk", images=1)
    b = make_generation(alice, gallery=posters, prompt="a blue kite at dusk", images=1)
    Generation.objects.filter(pk=b.pk).update(quality="low")
    image_a, image_b = a.images.get(), b.images.get()

    html = alice_client.get(f"/compare/?a={image_a.pk}&b={image_b.pk}").content.decode()

    assert "<mark>red</mark>" in html and "<mark>blue</mark>" in html
    assert "<mark>kite</mark>" not in html
    different = re.findall(r"<tr class=\"is-different\">\s*<th scope=\"row\">(\w+)", html)
    assert different == ["Quality", "Gallery"]
    # Both pictures, side by side and stacked for the slider, through the owner's media URLs.
    assert html.count(f'src="/media/images/{image_a.pk}/display/"') == 2
    assert html.count(f'src="/media/images/{image_b.pk}/display/"') == 2
    assert 'type="range"' in html and "data-compare-slider" in html
    assert f'href="/compare/?a={image_b.pk}&amp;b={image_a.pk}"' in html  # swap sides


def test_the_select_bar_compares_two_cards_or_one_card_of_several(alice, alice_client):
    one = make_generation(alice, images=1)
    two = make_generation(alice, images=2)
    first, second = two.images.order_by("index")

    response = alice_client.post("/generations/bulk/", {"action": "compare", "g": [one.pk, two.pk]})
    assert response["Location"] == f"/compare/?a={first.pk}&b={one.images.get().pk}"
    response = alice_client.post("/generations/bulk/", {"action": "compare", "g": [two.pk]})
    assert response["Location"] == f"/compare/?a={first.pk}&b={second.pk}"
    response = alice_client.post(
        "/generations/bulk/", {"action": "compare", "g": [one.pk], "next": "/"}, follow=True
    )
    assert "Pick two images to compare" in response.content.decode()


def test_a_missing_or_malformed_image_is_a_404(alice, alice_client):
    image = make_generation(alice, images=1).images.get()
    assert alice_client.get(f"/compare/?a={image.pk}").status_code == 404
    assert alice_client.get(f"/compare/?a={image.pk}&b=x").status_code == 404
