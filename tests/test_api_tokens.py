"""Personal API tokens: made on the account's API tokens page (shown once, stored hashed),
listed, revoked; made by `manage.py create_api_token`; seen and revoked by staff in admin;
never in a log."""

import io
import logging
import re

import pytest
from django.core.management import CommandError, call_command

from gallery.models import ApiToken, Gallery
from gallery.models.tokens import TOKEN_MARK, hash_token
from gallery.redaction import TOKEN_MARK as REDACTED_MARK
from gallery.redaction import RedactSecrets, redact_text

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r"drk_[A-Za-z0-9_-]{43}")


def test_a_new_token_is_shown_once_and_only_its_hash_and_prefix_are_kept(alice_client, alice):
    chat = Gallery.objects.create(owner=alice, name="Chat images")
    response = alice_client.post(
        "/accounts/tokens/",
        {"name": "Open WebUI", "access": "generate", "monthly_images": "50", "gallery": chat.pk},
    )
    html = response.content.decode()
    (shown,) = set(TOKEN.findall(html))
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    assert (token.name, token.monthly_images, token.gallery, token.user) == (
        "Open WebUI",
        50,
        chat,
        alice,
    )
    assert token.token_hash == hash_token(shown) and shown not in str(vars(token))
    assert token.prefix == shown[:12] and f"{token.prefix}…" in html
    # Never again: the list shows the prefix only.
    again = alice_client.get("/accounts/tokens/").content.decode()
    assert shown not in again and f"{token.prefix}…" in again
    assert ApiToken.objects.authenticate(shown) == token


def test_the_form_says_what_is_wrong_and_makes_nothing(alice_client, bob):
    bobs = Gallery.objects.create(owner=bob, name="Bob's")
    response = alice_client.post(
        "/accounts/tokens/",
        {"name": "", "access": "generate", "monthly_images": "0", "gallery": bobs.pk},
    )
    html = response.content.decode()
    assert "This field is required" in html
    assert "A cap of at least 1 image" in html
    assert "You can&#x27;t add images to that gallery" in html
    assert not ApiToken.objects.exists()


def test_revoking_stops_the_token_and_keeps_it_listed(alice_client, alice):
    token = ApiToken.objects.create(user=alice, name="nightly")
    response = alice_client.post(f"/accounts/tokens/{token.pk}/revoke/", follow=True)
    assert "“nightly” is revoked" in response.content.decode()
    token.refresh_from_db()
    assert token.is_revoked
    assert ApiToken.objects.authenticate(token.token) is None
    assert "Revoked" in alice_client.get("/accounts/tokens/").content.decode()


def test_the_account_page_and_the_navigation_lead_to_the_tokens(alice_client):
    assert 'href="/accounts/tokens/"' in alice_client.get("/accounts/password/").content.decode()
    assert 'href="/accounts/tokens/"' in alice_client.get("/").content.decode()


def test_lookups_refuse_what_is_not_a_live_token(alice):
    token = ApiToken.objects.create(user=alice, name="x")
    same_prefix = token.token[:12] + "A" * 43
    for presented in ("", "drk_", token.token[:-1], same_prefix[:55], token.token + "x"):
        assert ApiToken.objects.authenticate(presented) is None, presented
    assert ApiToken.objects.authenticate(token.token) == token


def test_create_api_token_prints_the_token_last(alice):
    Gallery.objects.create(owner=alice, name="Chat images")
    out = io.StringIO()
    call_command(
        "create_api_token",
        "alice",
        "--name",
        "n8n",
        "--read-only",
        "--monthly-images",
        "20",
        "--gallery",
        "Chat images",
        stdout=out,
    )
    last = out.getvalue().splitlines()[-1]
    token = ApiToken.objects.authenticate(last)
    assert token.name == "n8n" and not token.may_generate and token.monthly_images == 20
    assert token.gallery.name == "Chat images"
    with pytest.raises(CommandError, match="No account is called"):
        call_command("create_api_token", "nobody", "--name", "x")
    with pytest.raises(CommandError, match="no gallery"):
        call_command("create_api_token", "alice", "--name", "x", "--gallery", "Nope")
    with pytest.raises(CommandError, match="monthly_images"):
        call_command("create_api_token", "alice", "--name", "x", "--monthly-images", "0")


def test_staff_see_every_token_and_revoke_them_in_admin(client, staff, alice, bob):
    alices = ApiToken.objects.create(user=alice, name="Alice's script")
    bobs = ApiToken.objects.create(user=bob, name="Bob's bot")
    client.force_login(staff)
    listing = client.get("/admin/gallery/apitoken/").content.decode()
    assert "Alice&#x27;s script" in listing and "Bob&#x27;s bot" in listing
    assert alices.prefix in listing and alices.token not in listing
    assert client.get("/admin/gallery/apitoken/add/").status_code == 403
    client.post(
        "/admin/gallery/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [bobs.pk]},
    )
    bobs.refresh_from_db()
    alices.refresh_from_db()
    assert bobs.is_revoked and not alices.is_revoked


def test_no_token_or_authorization_header_reaches_a_log(alice):
    token = ApiToken.objects.create(user=alice, name="x").token
    assert TOKEN_MARK == REDACTED_MARK
    lines = [
        f"GET /api/generations HTTP/1.1 Authorization: Bearer {token}",
        f"{{'HTTP_AUTHORIZATION': 'Bearer {token}', 'PATH_INFO': '/v1/images/generations'}}",
        # A gunicorn access format that logs the header's value alone.
        f'127.0.0.1 "POST /v1/images/generations HTTP/1.1" 200 "Bearer {token}"',
        f"authorization: Basic dXNlcjpwYXNzd29yZA== token={token}",
        f"something went wrong with {token[:20]}",
        "GET /v1/images/files/eyJpbWFnZSI6MX0:1tQ:abcdef HTTP/1.1",
    ]
    for line in lines:
        redacted = redact_text(line)
        assert token[4:12] not in redacted and "dXNlcjpwYXNzd29yZA" not in redacted, redacted
        assert "eyJpbWFnZSI6MX0" not in redacted, redacted
    record = logging.LogRecord("x", logging.INFO, "", 0, "Authorization: %s", (token,), None)
    RedactSecrets().filter(record)
    assert record.getMessage() == "Authorization: [redacted]"
    # Words are not secrets.
    assert redact_text("Send a Bearer token") == "Send a Bearer token"
