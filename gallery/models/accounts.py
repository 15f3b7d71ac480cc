"""What belongs to a person rather than to a gallery: their monthly quota, whether they are
approved to spend the team's subscription yet, the identity provider's name for them, and
the invitations that brought people in."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Quota(models.Model):
    """An operator's limit on how many images one person may make per calendar month.

    Set in admin; no row, or an empty limit, means no limit (gallery/spend.py counts).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota"
    )
    monthly_images = models.PositiveIntegerField(
        "images per month",
        null=True,
        blank=True,
        help_text="How many images this person may make each calendar month. Empty: no limit.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "monthly quota"

    def __str__(self):
        limit = "no limit" if self.monthly_images is None else f"{self.monthly_images} images"
        return f"{self.user}: {limit} a month"


class AccountApprovalQuerySet(models.QuerySet):
    def waiting(self):
        return self.filter(approved_at__isnull=True)


class AccountApproval(models.Model):
    """How a self-made account arrived, and whether an operator has let it in yet.

    Only accounts that people make themselves (sign-up, OpenID Connect, an invitation) get
    a row. No row means approved: accounts that operators make in admin or with
    `createsuperuser`, and every account from before approvals existed, so an upgrade
    locks nobody out.
    """

    class Source(models.TextChoices):
        SIGNUP = "signup", "Signed up"
        OIDC = "oidc", "Signed in with the identity provider"
        INVITATION = "invitation", "Accepted an invitation"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="approval"
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    requested_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty on an approved row: approved on arrival (invited, or an allowed domain).",
    )

    objects = AccountApprovalQuerySet.as_manager()

    class Meta:
        verbose_name = "account approval"

    def __str__(self):
        state = "approved" if self.approved_at else "waiting for approval"
        return f"{self.user}: {state}"

    @classmethod
    def record_arrival(cls, user, source, *, approved):
        now = timezone.now() if approved else None
        return cls.objects.create(user=user, source=source, approved_at=now)

    @classmethod
    def approve(cls, users, by=None):
        """Let every waiting account among `users` in; returns how many were waiting."""
        waiting = cls.objects.waiting().filter(user__in=users)
        return waiting.update(approved_at=timezone.now(), approved_by=by)


def awaiting_approval_q(prefix=""):
    """The one definition of waiting for approval, as a filter on users (or through a
    relation: prefix "user__"): they made their account themselves and no operator has let
    them in yet. Staff never wait. Everything else below asks this."""
    waiting = Q(**{f"{prefix}approval__isnull": False, f"{prefix}approval__approved_at": None})
    return waiting & Q(**{f"{prefix}is_staff": False})


def team_members_q(prefix=""):
    """`is_team_member` as a filter on users (or through a relation: prefix "user__")."""
    return Q(**{f"{prefix}is_active": True}) & ~awaiting_approval_q(prefix)


def is_awaiting_approval(user):
    """Whether `user` signed up and no operator has approved them yet."""
    if not (user and user.is_authenticated):
        return False
    return get_user_model().objects.filter(awaiting_approval_q(), pk=user.pk).exists()


AWAITING_APPROVAL = (
    "Your account is waiting for an operator's approval. You can look around, but "
    "generating starts once they approve it."
)
AWAITING_APPROVAL_TO_SHARE = (
    "Your account is waiting for an operator's approval: making galleries and sharing them "
    "start once they approve it."
)


def approval_refusal(user):
    """Why `user` may not spend the team's subscription yet, or None when they may."""
    return AWAITING_APPROVAL if is_awaiting_approval(user) else None


def is_team_member(user):
    """Whether `user` counts as one of this Darkroom's team: who sees galleries opened to
    the team, may be added to a gallery, and may make, share and open galleries. One rule,
    asked by the galleries' querysets, the members form and the gallery pages. An account
    waiting for approval is not in the team yet."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    return get_user_model().objects.filter(team_members_q(), pk=user.pk).exists()


class OidcIdentity(models.Model):
    """The identity provider's own, stable name for a person (issuer and subject), so a
    returning person gets the same account even after their e-mail address changes."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "OpenID Connect identity"
        verbose_name_plural = "OpenID Connect identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique")
        ]

    def __str__(self):
        return f"{self.user} at {self.issuer}"


def hash_invitation_token(token):
    # The token is 256 random bits, so a fast hash is enough (as for API keys): what is
    # stored can't be turned back into a working link.
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet):
    def pending(self, now=None):
        now = now or timezone.now()
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)

    def for_email(self, email):
        return self.filter(email__iexact=email)


class Invitation(models.Model):
    """A single-use link, sent by e-mail, that lets one person make an account (approved on
    arrival), also while sign-up is closed. Only the token's hash is kept."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    email = models.EmailField("e-mail address")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Invitation for {self.email}"

    @classmethod
    def issue(cls, email, invited_by=None):
        """A new pending invitation and its token (the only time the token exists)."""
        invitation = cls(email=email, invited_by=invited_by)
        token = invitation.new_token()
        invitation.save()
        return invitation, token

    def renew(self):
        """A fresh token and seven more days; the old link stops working. Returns the token."""
        token = self.new_token()
        self.save(update_fields=["token_hash", "expires_at"])
        return token

    def new_token(self):
        """Give it a fresh token, valid for INVITATION_DAYS from now (save afterwards).
        Returns the token: the only time it exists outside the e-mail."""
        token = secrets.token_urlsafe(32)
        self.token_hash = hash_invitation_token(token)
        self.expires_at = timezone.now() + timedelta(days=settings.INVITATION_DAYS)
        return token

    @classmethod
    def find_pending(cls, token):
        return cls.objects.pending().filter(token_hash=hash_invitation_token(token)).first()

    @property
    def state(self):
        if self.accepted_at is not None:
            return self.State.ACCEPTED
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.State.PENDING

    def claim(self):
        """Mark it accepted if it still is pending: True for exactly one caller, ever.

        Run it in the same transaction as the account it lets in, and set `accepted_by`
        once that exists.
        """
        now = timezone.now()
        claimed = Invitation.objects.pending(now).filter(pk=self.pk).update(accepted_at=now)
        if claimed:
            self.accepted_at = now
        return claimed == 1

    def revoke(self):
        now = timezone.now()
        revoked = Invitation.objects.pending(now).filter(pk=self.pk).update(revoked_at=now)
        if revoked:
            self.revoked_at = now
        return revoked == 1
