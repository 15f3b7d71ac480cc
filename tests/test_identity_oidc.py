"""Signing in with the team's identity provider: a real OpenID Connect provider on loopback
(tests/oidc_fixtures.py), Django's test client as the browser on Darkroom's side."""

import logging
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from axes.models import AccessAttempt, AccessFailureLog
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation

from gallery.identity.oidc import TeamOIDCBackend, forget_discovery
from gallery.models import AccountApproval, Invitation, OidcIdentity, is_team_member
from tests.conftest import PASSWORD
from tests.oidc_fixtures import CLIENT_ID, CLIENT_SECRET

User = get_user_model()
pytestmark = pytest.mark.django_db


@pytest.fixture
def provider(oidc_provider, settings):
    oidc_provider.configure(settings)
    return oidc_provider


def sign_in(client, email="ada.lovelace@acme.test", **person):
    from tests.oidc_fixtures import ProviderPerson

    return ProviderPerson().sign_in_through(client, email=email, **person)


def error_on_sign_in_page(response):
    assert response.redirect_chain[-1][0] == "/accounts/login/", response.redirect_chain
    assert "_auth_user_id" not in response.client.session
    return " ".join(str(m) for m in response.context["messages"])


# -- arriving -------------------------------------------------------------------------------


@pytest.mark.postgres  # claims and approval queries are conditional SQL
def test_a_new_person_lands_on_the_studio_with_an_account_named_from_their_email(client, provider):
    response = sign_in(client, "Ada.Lovelace@acme.test")

    assert response.redirect_chain[-1][0] == "/"
    assert "ada.lovelace" in response.text  # the header names the account
    user = User.objects.get()
    assert (user.username, user.email) == ("ada.lovelace", "Ada.Lovelace@acme.test")
    assert not user.has_usable_password()
    assert OidcIdentity.objects.get().issuer == provider.issuer


def test_a_returning_person_gets_the_same_account_even_with_a_new_address(client, provider):
    sign_in(client, "grace@acme.test", subject="employee-1906")
    client.logout()

    sign_in(client, "grace.hopper@acme.test", subject="employee-1906")

    assert User.objects.count() == 1
    assert client.session["_auth_user_id"] == str(User.objects.get(username="grace").pk)


def test_an_existing_account_is_linked_by_a_verified_email(client, provider, alice):
    response = sign_in(client, "alice@example.com")

    assert response.redirect_chain[-1][0] == "/"
    assert client.session["_auth_user_id"] == str(alice.pk)
    assert User.objects.count() == 1
    assert alice.oidc_identities.count() == 1
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)  # their password still works too


def test_a_second_person_with_the_same_local_part_gets_a_name_of_their_own(client, provider):
    sign_in(client, "ada@acme.test")
    client.logout()
    sign_in(client, "ada@other.test")
    assert sorted(User.objects.values_list("username", flat=True)) == ["ada", "ada2"]


def test_the_request_carries_state_nonce_and_a_pkce_challenge(client, provider):
    # The provider refuses any authorization request without PKCE (server.mjs), so every
    # successful sign-in in this file also proves it is sent.
    location = client.get("/accounts/oidc/authenticate/")["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{provider.issuer}/auth?")
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32
    assert query["redirect_uri"] == ["http://testserver/accounts/oidc/callback/"]


# -- refusals: a plain message on the sign-in page, and nothing made -------------------------


def test_an_unverified_email_is_refused_and_makes_no_account(client, provider):
    message = error_on_sign_in_page(sign_in(client, "mallory@acme.test", verified=False))
    assert "hasn't verified the e-mail address" in message
    assert not User.objects.exists()


def test_an_unverified_email_never_signs_in_as_the_account_that_uses_it(client, provider, alice):
    error_on_sign_in_page(sign_in(client, "alice@example.com", verified=False))
    assert not alice.oidc_identities.exists()


def test_an_entra_answer_without_email_verified_is_refused_unless_configured(client, provider):
    # Entra sends no email_verified: unconfigured, nobody signs in through it by e-mail.
    message = error_on_sign_in_page(sign_in(client, "grace@acme.test", entra=True))
    assert "hasn't verified the e-mail address" in message
    assert not User.objects.exists()


def test_entra_people_sign_in_when_its_domain_verified_claim_is_named(client, provider, settings):
    settings.OIDC_EMAIL_VERIFIED_CLAIM = "xms_edov"
    settings.OIDC_ALLOWED_EMAIL_DOMAINS = ["acme.test"]
    assert sign_in(client, "grace@acme.test", entra=True).redirect_chain[-1][0] == "/"
    assert User.objects.get().email == "grace@acme.test"
    client.logout()
    refused = error_on_sign_in_page(sign_in(client, "ada@acme.test", entra=True, verified=False))
    assert "hasn't verified the e-mail address" in refused
    assert User.objects.count() == 1


def test_a_disallowed_domain_is_refused_and_makes_no_account(client, provider, settings):
    settings.OIDC_ALLOWED_EMAIL_DOMAINS = ["acme.test"]
    message = error_on_sign_in_page(sign_in(client, "eve@elsewhere.test"))
    assert "for addresses at acme.test; eve@elsewhere.test isn't one of them" in message
    assert not User.objects.exists()


def test_a_tampered_state_is_refused_and_makes_no_account(client, provider):
    def tamper(callback):
        parts = urlsplit(callback)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["state"] = "forged-" + query["state"][7:]
        return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"

    page = sign_in(client, tamper=tamper)
    assert page.status_code == 400
    assert "isn't for a sign-in started in this browser" in page.text
    assert "_auth_user_id" not in client.session
    assert not User.objects.exists()


def test_an_id_token_signed_by_another_key_is_refused(client, make_oidc_provider, settings):
    forger = make_oidc_provider(rogue=True)  # signs with one key, publishes another
    forger.configure(settings)

    message = error_on_sign_in_page(sign_in(client))

    assert "Darkroom couldn't verify Acme ID's answer" in message
    assert not User.objects.exists()


def test_cancelling_at_the_provider_lands_back_on_sign_in(client, provider):
    message = error_on_sign_in_page(sign_in(client, cancel=True))
    assert message == "The sign-in was cancelled at Acme ID."
    assert not User.objects.exists()


def test_a_disabled_account_is_refused(client, provider, alice):
    alice.is_active = False
    alice.save()
    message = error_on_sign_in_page(sign_in(client, "alice@example.com"))
    assert "This Darkroom account is disabled" in message


def test_deactivating_an_account_ends_the_sessions_it_signed_in_through_the_provider(
    client, provider
):
    assert sign_in(client, "grace@acme.test").redirect_chain[-1][0] == "/"
    User.objects.filter(email="grace@acme.test").update(is_active=False)
    # The next request of the same browser is a stranger's, as with a password session.
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_replaying_a_callback_is_refused(client, provider):
    from tests.oidc_fixtures import ProviderPerson

    start = client.get("/accounts/oidc/authenticate/")
    callback = ProviderPerson().sign_in(start["Location"], email="ada@acme.test")
    path = callback.removeprefix("http://testserver")
    assert client.get(path).status_code == 302
    client.logout()
    again = client.get(path)
    assert again.status_code == 400
    assert "expired or was already used, so Darkroom ignored it" in again.text
    assert "_auth_user_id" not in client.session


# -- answers for sign-ins this browser never started: a plain page, and nothing changes --------


def test_an_error_answer_without_the_state_of_a_sign_in_here_signs_nobody_out(
    client, provider, alice
):
    client.force_login(alice)
    session_key = client.session.session_key
    for query in ["error=access_denied", "error=x&state=made-up", "code=x&state=made-up"]:
        page = client.get(f"/accounts/oidc/callback/?{query}")
        assert page.status_code == 400, query
        assert "You're still signed in as <strong>alice</strong>" in page.text
    assert client.session.session_key == session_key
    assert client.session["_auth_user_id"] == str(alice.pk)
    assert client.get("/").status_code == 200


def test_a_forged_answer_does_not_spoil_a_sign_in_in_progress(client, provider):
    from tests.oidc_fixtures import ProviderPerson

    start = client.get("/accounts/oidc/authenticate/")
    # Meanwhile another site sends this browser to the callback with an error of its own.
    assert client.get("/accounts/oidc/callback/?error=access_denied&state=x").status_code == 400

    callback = ProviderPerson().sign_in(start["Location"], email="ada@acme.test")
    arrived = client.get(callback.removeprefix("http://testserver"), follow=True)
    assert arrived.redirect_chain[-1][0] == "/"
    assert User.objects.get().email == "ada@acme.test"


def test_cancelling_a_sign_in_started_while_signed_in_signs_nobody_out(client, provider, alice):
    client.force_login(alice)
    landed = sign_in(client, cancel=True)
    assert client.session["_auth_user_id"] == str(alice.pk)
    assert "The sign-in was cancelled at Acme ID." in landed.text


def test_an_unreachable_provider_never_stops_the_site_and_the_button_says_so(client, settings):
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # the discard port: nothing listens
    settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    settings.OIDC_LABEL = "Acme ID"

    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert "Sign in with Acme ID (unreachable)" in page.text
    assert "can't be reached right now" in page.text
    assert 'name="password"' in page.text  # passwords still work

    response = client.get("/accounts/oidc/authenticate/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "Acme ID can't be reached right now" in str(list(response.context["messages"])[0])


def test_oidc_sign_ins_are_never_counted_as_failed_passwords(client, provider, alice, settings):
    settings.AXES_FAILURE_LIMIT = 2
    for _ in range(3):
        error_on_sign_in_page(sign_in(client, "nobody@acme.test", verified=False))
    sign_in(client, "ada@acme.test")
    client.logout()

    assert not AccessAttempt.objects.exists()
    assert not AccessFailureLog.objects.exists()
    answer = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 302


def test_no_secret_or_code_reaches_a_log_or_a_page(client, provider, caplog):
    caplog.set_level(logging.DEBUG)
    from tests.oidc_fixtures import ProviderPerson

    person = ProviderPerson()
    start = client.get("/accounts/oidc/authenticate/")
    callback = person.sign_in(start["Location"], email="mallory@acme.test", verified=False)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    page = client.get(callback.removeprefix("http://testserver"), follow=True)

    assert "OIDC sign-in refused: e-mail not verified" in caplog.text
    for secret in (CLIENT_SECRET, code):
        assert secret not in caplog.text
        assert secret not in page.text
    assert CLIENT_SECRET not in client.get("/accounts/login/").text


# -- who waits for approval -----------------------------------------------------------------


def test_in_approval_mode_a_new_person_from_any_domain_waits(client, provider, settings):
    settings.SIGNUP_MODE = "approval"
    response = sign_in(client, "newcomer@gmail.test")
    assert response.redirect_chain[-1][0] == "/"
    assert "Waiting for approval" in response.text
    assert not is_team_member(User.objects.get())


def test_people_in_an_allowed_domain_are_approved_on_arrival(client, provider, settings):
    settings.SIGNUP_MODE = "approval"
    settings.OIDC_ALLOWED_EMAIL_DOMAINS = ["acme.test"]
    response = sign_in(client, "ada@acme.test")
    assert "Waiting for approval" not in response.text
    assert is_team_member(User.objects.get())
    assert AccountApproval.objects.get().source == AccountApproval.Source.OIDC


def test_with_sign_up_closed_only_invited_people_get_an_account(client, provider, settings, staff):
    settings.SIGNUP_MODE = "closed"
    message = error_on_sign_in_page(sign_in(client, "stranger@gmail.test"))
    assert "new ones need an invitation" in message

    invitation, _token = Invitation.issue("invited@gmail.test", invited_by=staff)
    response = sign_in(client, "invited@gmail.test")

    assert response.redirect_chain[-1][0] == "/"
    person = User.objects.get(email="invited@gmail.test")
    assert is_team_member(person)
    invitation.refresh_from_db()
    assert invitation.state == Invitation.State.ACCEPTED and invitation.accepted_by == person


def test_oidc_create_users_off_lets_only_existing_accounts_in(client, provider, settings, alice):
    settings.OIDC_CREATE_USER = False
    assert "no Darkroom account" in error_on_sign_in_page(sign_in(client, "ada@acme.test"))
    assert sign_in(client, "alice@example.com").redirect_chain[-1][0] == "/"


# -- OIDC_ONLY ------------------------------------------------------------------------------


def test_oidc_only_shows_just_the_provider_button(client, provider, settings, staff):
    settings.OIDC_ONLY = True
    page = client.get("/accounts/login/")

    assert "Sign in with Acme ID" in page.text
    assert 'name="password"' not in page.text
    assert "/accounts/signup/" not in page.text
    assert "/accounts/password/reset/" not in page.text
    assert client.get("/accounts/signup/").status_code == 404
    assert client.get("/accounts/password/reset/").status_code == 404
    assert (
        client.post("/accounts/login/", {"username": "operator", "password": PASSWORD}).status_code
        == 405
    )
    # Operators still reach admin with their password.
    admin = client.post(
        "/admin/login/?next=/admin/", {"username": "operator", "password": PASSWORD}
    )
    assert admin.status_code == 302 and admin["Location"] == "/admin/"


# -- the ID token checks on top of the library's signature check -----------------------------


@pytest.fixture
def verifier():
    backend = TeamOIDCBackend()
    backend.OIDC_RP_CLIENT_ID = CLIENT_ID
    backend.OIDC_RP_SIGN_ALGO = "RS256"
    backend.issuer = "https://id.acme.test"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def verify(**claims):
        now = int(time.time())
        token_claims = {
            "iss": "https://id.acme.test",
            "aud": CLIENT_ID,
            "sub": "ada",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        token = jwt.encode({k: v for k, v in token_claims.items() if v is not None}, key, "RS256")
        return backend._verify_jws(token, key.public_key())

    return verify


def test_a_well_formed_id_token_passes(verifier):
    assert verifier()["sub"] == "ada"


@pytest.mark.parametrize(
    "claims, why",
    [
        ({"iss": "https://evil.test"}, "Invalid issuer"),
        ({"aud": "another-app"}, "Audience doesn't match"),
        ({"exp": int(time.time()) - 3600}, "Signature has expired"),
        ({"exp": None}, 'missing the "exp" claim'),
        ({"aud": [CLIENT_ID, "another-app"], "azp": "another-app"}, "issued to another party"),
    ],
)
def test_id_tokens_for_someone_else_or_too_old_are_refused(verifier, claims, why):
    with pytest.raises(SuspiciousOperation, match=why):
        verifier(**claims)


# -- signing out: of the provider too (RP-initiated logout) ----------------------------------


def signed_in_person(client, email="ada@acme.test"):
    from tests.oidc_fixtures import ProviderPerson

    person = ProviderPerson()
    start = client.get("/accounts/oidc/authenticate/")
    callback = person.sign_in(start["Location"], email=email)
    assert client.get(callback.removeprefix("http://testserver")).status_code == 302
    return person


def next_sign_in_goes_straight_through(client, person):
    return person.is_signed_in_at(client.get("/accounts/oidc/authenticate/")["Location"])


def test_signing_out_ends_the_providers_session_so_the_next_sign_in_asks_again(client, provider):
    person = signed_in_person(client)
    assert next_sign_in_goes_straight_through(client, person)  # the provider remembers them

    answer = client.post("/accounts/logout/")

    assert "_auth_user_id" not in client.session
    parts = urlsplit(answer["Location"])
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}"
        == provider.discovery()["end_session_endpoint"]
    )
    assert parse_qs(parts.query) == {
        "client_id": [CLIENT_ID],
        "post_logout_redirect_uri": ["http://testserver/accounts/signed-out/"],
    }  # no ID token travels through the browser
    back = person.sign_out(answer["Location"])
    assert back == "http://testserver/accounts/signed-out/"
    assert "You're signed out." in client.get(back).text
    assert not next_sign_in_goes_straight_through(client, person)  # asked who they are


def test_pages_let_sign_out_lead_on_to_the_provider_only_while_it_is_configured(
    client, provider, settings
):
    # Sign out answers with a redirect to the provider: browsers hold it to form-action.
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    assert f"form-action 'self' {provider.issuer};" in policy
    settings.OIDC_ISSUER = ""
    assert "form-action 'self';" in client.get("/accounts/login/")["Content-Security-Policy"]


def test_a_password_session_signs_out_of_darkroom_only(client, provider, alice):
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    answer = client.post("/accounts/logout/")
    assert answer["Location"] == "/accounts/signed-out/"
    assert "_auth_user_id" not in client.session


def test_a_provider_without_an_end_session_endpoint_signs_out_of_darkroom_only(
    client, make_oidc_provider, settings
):
    make_oidc_provider(logout=False).configure(settings)
    person = signed_in_person(client)
    answer = client.post("/accounts/logout/")
    assert answer["Location"] == "/accounts/signed-out/"
    assert "_auth_user_id" not in client.session
    assert next_sign_in_goes_straight_through(client, person)


def test_a_provider_that_is_down_at_sign_out_still_signs_out_of_darkroom(
    client, provider, settings
):
    signed_in_person(client)
    settings.OIDC_ISSUER = "http://127.0.0.1:9"  # the provider went away meanwhile
    forget_discovery()
    page = client.post("/accounts/logout/", follow=True)
    assert page.redirect_chain[-1][0] == "/accounts/signed-out/"
    assert "_auth_user_id" not in client.session
    assert "Acme ID can&#x27;t be reached, so you may still be signed in there" in page.text
