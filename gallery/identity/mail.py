"""The e-mail Darkroom sends of its own: invitations (password reset mail is Django's)."""

import logging
import smtplib

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from gallery.identity import throttling
from gallery.models import Invitation

logger = logging.getLogger("gallery.identity")


class MailNotSent(Exception):
    pass


class MailThrottled(MailNotSent):
    """Not sent: too many invitations from this address, or to this e-mail address."""

    def __init__(self, refusal):
        super().__init__(throttling.explain(refusal))
        self.refusal = refusal


def invite(request, email, *, invited_by):
    """Issue an invitation for `email` and mail its link: the one way invitations are made
    (the staff page; admin's "Add" leads there). Raises MailNotSent (or MailThrottled) and
    then keeps nothing, so no invitation exists whose link nobody received.

    Saved before mailing, so no database transaction stays open while the mail server talks.
    """
    invitation, token = Invitation.issue(email, invited_by=invited_by)
    try:
        send_invitation(request, invitation, token)
    except MailNotSent:
        invitation.delete()
        raise
    return invitation


def send_invitation(request, invitation, token):
    """E-mail the invitation's link; raises MailNotSent (the cause is logged, no secrets),
    MailThrottled when the invitation throttles refuse. Every door that mails invitations
    (the staff page, admin's add and "send again") comes through here."""
    if not settings.EMAIL_ENABLED:
        raise MailNotSent("no EMAIL_URL is set")
    if refusal := throttling.invitation_mail(request, invitation.email):
        logger.warning("Invitation e-mail to %s not sent: throttled", invitation.email)
        raise MailThrottled(refusal)
    context = {
        "invitation": invitation,
        "link": request.build_absolute_uri(reverse("invitation_accept", args=[token])),
        "site": request.get_host(),
    }
    subject = render_to_string("registration/invitation_subject.txt", context).strip()
    body = render_to_string("registration/invitation_email.txt", context)
    try:
        send_mail(subject, body, None, [invitation.email])
    except (smtplib.SMTPException, OSError) as exc:
        # smtplib's messages hold the server's reply, never the password we sent.
        logger.warning("Invitation e-mail to %s not sent: %s", invitation.email, exc)
        raise MailNotSent(str(exc)) from None
