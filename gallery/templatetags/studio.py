"""Template helpers for the studio's cards."""

import functools
import hashlib
from datetime import timedelta

from django import template
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def card_version(generation):
    """A short fingerprint of everything an unfinished card shows that can change.

    The page names each unfinished card with it in its one update request (`w=<pk>:<this>`),
    and the request is held while every card still matches (views.studio.studio_updates),
    so a waiting card costs no render and no request of its own.
    """
    seen = (
        generation.status,
        generation.queue_position,
        generation.estimated_wait_minutes,
        generation.caller_favourite,  # the viewer's own star (Generation.objects.visible_to)
        generation.error,
    )
    text = "\x1f".join(str(value) for value in seen)  # str(): a Status member is its value
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


# A pk no row will have, reversed in place of the real one: what is left around it is the
# URL's fixed text for that name.
_PK_MARK = 8_675_309_123_456_789


@functools.cache
def _around_pk(name, prefix, urlconf):
    before, after = reverse(name, args=[_PK_MARK], urlconf=urlconf).split(str(_PK_MARK))
    return before, after


@register.simple_tag
def pk_url(name, pk):
    """{% url name pk %} for a URL whose one argument is an `<int:pk>`, at a fraction of its
    cost: the URL's text around the pk is reversed once (per script prefix and URLconf) and
    kept. A page of 24 cards asks for about 150 of these; each `reverse` resolves its
    pattern again."""
    before, after = _around_pk(name, get_script_prefix(), get_urlconf())
    return f"{before}{int(pk)}{after}"


@functools.cache
def _fixed_url(name, prefix, urlconf):
    return reverse(name, urlconf=urlconf)


@register.simple_tag
def use_settings_url(pk):
    """The studio with generation `pk`'s settings in its form (?use=<pk>): a card's "Use
    these settings", without a `reverse` per card (see pk_url)."""
    return f"{_fixed_url('studio', get_script_prefix(), get_urlconf())}?use={int(pk)}"


@register.filter
def seconds(milliseconds):
    """4320 -> "4.3 s"; a blank for an unknown duration."""
    if milliseconds is None:
        return "—"
    return f"{milliseconds / 1000:.1f} s"


@register.filter
def ago(moment):
    """ "just now" for the first minute, then "3 minutes ago", "2 hours ago" (one unit)."""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment, depth=1)} ago"


@register.simple_tag
def card_time(moment):
    """A card's <time>: "3 minutes ago", the moment to the minute as its tooltip and in
    ISO 8601 for machines; one tag, one local time (three filters on a page of 24 cards
    cost more than any other field, through the locale's date formats)."""
    local = timezone.localtime(moment)
    return format_html(
        '<time class="card__time" datetime="{}" title="{}">{}</time>',
        local.isoformat(timespec="seconds"),
        f"{local.day} {local:%b %Y, %H:%M}",
        ago(moment),
    )


@register.filter
def dimensions(image_size):
    """ "1024x1024" -> "1024×1024", as people write it."""
    return image_size.replace("x", "×")


# How much of a prompt a card shows (and a detail page before "Show the whole prompt"): a
# prompt may be 32,000 characters, and a page of 24 cards must not carry them all.
CARD_PROMPT_CHARS = 280
DETAIL_PROMPT_CHARS = 600


@register.filter
def folded(prompt, limit=CARD_PROMPT_CHARS):
    """The prompt cut at a word before `limit` characters, with "…", or whole if it fits."""
    if len(prompt) <= limit:
        return prompt
    cut = prompt[:limit].rsplit(None, 1)[0] if " " in prompt[:limit] else prompt[:limit]
    return f"{cut.rstrip(' ,.;:')}…"


@register.filter
def is_folded(prompt, limit=CARD_PROMPT_CHARS):
    return len(prompt) > limit


@register.simple_tag
def detail_prompt_chars():
    return DETAIL_PROMPT_CHARS
