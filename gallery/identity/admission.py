"""Who may make an account, and who waits for an operator's approval before spending the
team's subscription.

- Sign-up form: allowed unless SIGNUP_MODE is closed (or OIDC_ONLY); approved on arrival in
  "open" mode, waiting in "approval" mode.
- Invitation: works in every mode; approved on arrival.
- OpenID Connect: only with a verified e-mail, in OIDC_ALLOWED_EMAIL_DOMAINS when that is
  set. An allowed domain (or an invitation) approves on arrival; with no domain list, new
  people follow SIGNUP_MODE like the sign-up form, since "any domain" may mean anyone with
  an account at a public provider.
"""

import logging
import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from gallery.models import AccountApproval, Invitation, OidcIdentity

logger = logging.getLogger(__name__)
User = get_user_model()
Source = AccountApproval.Source


class Refused(Exception):
    """A sign-in that must not happen: `message` is for the person, `reason` for the log."""

    def __init__(self, message, reason):
        super().__init__(reason)
        self.message = message
        self.reason = reason


def signup_mode():
    # SIGNUP_ENABLED=0 is the older way to close sign-up; it still wins.
    return settings.SIGNUP_MODE if settings.SIGNUP_ENABLED else "closed"


def password_signup_open():
    return signup_mode() != "closed" and not settings.OIDC_ONLY


def oidc_configured():
    return bool(settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


@transaction.atomic
def sign_up(form):
    """Save a valid sign-up form's account, waiting for approval unless sign-up is open."""
    user = form.save()
    AccountApproval.record_arrival(user, Source.SIGNUP, approved=signup_mode() == "open")
    return user


def accept_invitation(invitation, form):
    """The account a valid acceptance form makes, or None when the invitation was used,
    revoked or expired meanwhile (then nothing is made)."""
    with transaction.atomic():
        if not invitation.claim():
            return None
        user = form.save()
        _accepted(invitation, user)
    return user


def _accepted(invitation, user):
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_by"])
    approval, created = AccountApproval.objects.get_or_create(
        user=user, defaults={"source": Source.INVITATION, "approved_at": timezone.now()}
    )
    if not created:
        AccountApproval.approve([user], by=invitation.invited_by)


def username_from_email(email):
    """The e-mail's local part as a user name Django accepts, made unique (ada, ada2, ...)."""
    base = re.sub(r"[^\w.@+-]", "", email.split("@", 1)[0].lower())[:140] or "member"
    candidate, n = base, 2
    while User.objects.filter(username__iexact=candidate).exists():
        candidate, n = f"{base}{n}", n + 1
    return candidate


def oidc_person(issuer, claims):
    """The account an identity provider's checked claims sign in as; raises Refused.

    The same (issuer, subject) is always the same account. A first sign-in links to an
    existing account only through a verified e-mail address, or makes a new one.
    """
    label = settings.OIDC_LABEL
    email = (claims.get("email") or "").strip()
    # Most providers say so in email_verified; Entra only in its optional xms_edov claim.
    if not email or claims.get(settings.OIDC_EMAIL_VERIFIED_CLAIM) not in (True, "true"):
        raise Refused(
            f"{label} hasn't verified the e-mail address of your account there, so Darkroom "
            "can't tell who you are. Verify it at your provider, then sign in again.",
            f"e-mail not verified ({email or 'none given'})",
        )
    domain = email.rsplit("@", 1)[-1].lower()
    allowed = settings.OIDC_ALLOWED_EMAIL_DOMAINS
    if allowed and domain not in allowed:
        raise Refused(
            f"Signing in with {label} is for addresses at {', '.join(allowed)}; "
            f"{email} isn't one of them.",
            f"domain {domain} not allowed ({email})",
        )
    with transaction.atomic():
        return _oidc_account(issuer, claims, email, in_allowed_domain=bool(allowed))


def _oidc_account(issuer, claims, email, *, in_allowed_domain):
    identity = OidcIdentity.objects.select_related("user").filter(
        issuer=issuer, subject=claims["sub"]
    )
    identity = identity.first()
    invitation = Invitation.objects.pending().for_email(email).first()
    user = identity.user if identity else _account_by_email(issuer, email)
    if user is None:
        user = _new_oidc_account(claims, email, invitation, in_allowed_domain)
    elif not user.is_active:
        raise Refused(
            "This Darkroom account is disabled. Ask an operator if that's a mistake.",
            f"account {user.username} is disabled",
        )
    else:
        if in_allowed_domain:
            AccountApproval.approve([user])
        if invitation is not None and invitation.claim():
            _accepted(invitation, user)
    if identity is None:
        OidcIdentity.objects.create(
            user=user, issuer=issuer, subject=claims["sub"], last_sign_in_at=timezone.now()
        )
    else:
        identity.last_sign_in_at = timezone.now()
        identity.save(update_fields=["last_sign_in_at"])
    return user


def _account_by_email(issuer, email):
    accounts = list(User.objects.filter(email__iexact=email)[:2])
    if len(accounts) > 1:
        raise Refused(
            f"More than one Darkroom account uses {email}, so Darkroom can't tell which is "
            "yours. Ask an operator to sort it out.",
            f"several accounts use {email}",
        )
    if accounts and accounts[0].oidc_identities.filter(issuer=issuer).exists():
        # The address now belongs to someone else at the provider (a reused mailbox, say).
        raise Refused(
            f"{email} belongs to another {settings.OIDC_LABEL} sign-in on this Darkroom. "
            "Ask an operator to sort it out.",
            f"{email} is linked to another subject",
        )
    return accounts[0] if accounts else None


def _new_oidc_account(claims, email, invitation, in_allowed_domain):
    mode = signup_mode()
    invited = invitation is not None and invitation.claim()
    if not invited and not (settings.OIDC_CREATE_USER and (in_allowed_domain or mode != "closed")):
        raise Refused(
            f"There's no Darkroom account for {email} yet, and new ones need an invitation. "
            "Ask an operator to invite you.",
            f"no account for {email} and creating one is not allowed",
        )
    names = {
        "first_name": str(claims.get("given_name") or "")[:150],
        "last_name": str(claims.get("family_name") or "")[:150],
    }
    for _ in range(5):  # another sign-in may take the same user name at the same moment
        try:
            with transaction.atomic():
                user = User.objects.create_user(username_from_email(email), email=email, **names)
                break
        except IntegrityError:
            continue
    else:
        raise Refused("Please try again.", f"no free user name for {email}")
    if invited:
        _accepted(invitation, user)
    else:
        approved = in_allowed_domain or mode == "open"
        AccountApproval.record_arrival(user, Source.OIDC, approved=approved)
    return user
