import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from gallery.models import Gallery

User = get_user_model()
pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_signup_creates_the_user_and_signs_them_in(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": "velvet-lantern-42", "password2": "velvet-lantern-42"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert User.objects.filter(username="dora").exists()
    studio = client.get("/")
    assert studio.status_code == 200
    assert b"dora" in studio.content


def test_signup_gives_the_new_user_a_default_gallery(client):
    client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": "velvet-lantern-42", "password2": "velvet-lantern-42"},
    )
    assert Gallery.objects.get(owner__username="dora", is_default=True).name == "My images"


def test_signup_with_a_weak_password_shows_why_and_creates_nothing(client):
    response = client.post(
        "/accounts/signup/", {"username": "dora", "password1": "12345", "password2": "12345"}
    )
    assert response.status_code == 200
    assert b"This password is too short" in response.content
    assert not User.objects.filter(username="dora").exists()


def test_signup_with_mismatched_passwords_creates_nothing(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": "velvet-lantern-42", "password2": "velvet-lantern-43"},
    )
    assert response.status_code == 200
    assert b"didn" in response.content  # "The two password fields didn't match."
    assert not User.objects.exists()


def test_signup_can_be_turned_off_for_closed_teams(client, settings):
    settings.SIGNUP_ENABLED = False
    assert client.get("/accounts/signup/").status_code == 404
    response = client.post(
        "/accounts/signup/",
        {"username": "dora", "password1": "velvet-lantern-42", "password2": "velvet-lantern-42"},
    )
    assert response.status_code == 404
    assert not User.objects.exists()
    assert b"/accounts/signup/" not in client.get("/accounts/login/").content


def test_login_with_a_wrong_password_shows_an_error(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert client.get("/").status_code == 302


def test_login_lands_on_the_studio(client, alice):
    from tests.conftest import PASSWORD

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response["Location"] == "/"


def test_logout_is_a_post_and_signs_out(alice_client):
    assert alice_client.get("/accounts/logout/").status_code == 405
    response = alice_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert alice_client.get("/").status_code == 302


def test_password_change_works(alice_client):
    response = alice_client.post(
        "/accounts/password/",
        {
            "old_password": "a-long-test-passphrase",
            "new_password1": "copper-harbour-77",
            "new_password2": "copper-harbour-77",
        },
    )
    assert response["Location"] == "/accounts/password/done/"
    assert User.objects.get(username="alice").check_password("copper-harbour-77")


def test_non_staff_cannot_open_admin(alice_client):
    response = alice_client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_staff_can_open_admin(client, staff):
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


def test_system_checks_are_clean():
    call_command("check", fail_level="WARNING")


def test_sign_up_from_one_network_is_throttled_and_says_when_to_try_again(client):
    def sign_up(username, address="198.51.100.4"):
        data = {"username": username, "password1": "velvet-lantern-42", "password2": "nope"}
        return client.post("/accounts/signup/", data, REMOTE_ADDR=address)

    for n in range(10):  # mistakes count too: each try is a guess at a user name
        assert sign_up(f"guess{n}").status_code == 200
    refused = sign_up("dora")

    assert refused.status_code == 429
    assert 59 * 60 < int(refused["Retry-After"]) <= 60 * 60
    message = " ".join(refused.text.split())
    assert "Too many sign-ups from your network just now. Try again in 1 hour." in message
    assert 'value="dora"' in refused.text  # the chosen name is kept
    assert b"didn" not in refused.content  # and nothing is checked: no errors to fix
    assert sign_up("dora", address="203.0.113.9").status_code == 200  # another network
