"""Remember in the session whether the person who just signed in waits for approval, so
pages ask the database about it only for those who do (everyone else: no query)."""

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from gallery.models import is_awaiting_approval

SESSION_KEY = "darkroom_awaiting_approval"


@receiver(user_logged_in)
def note_whether_awaiting_approval(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = is_awaiting_approval(user)


def still_awaiting_approval(request):
    """For the layout's notice: asks the database only while the session says "waiting",
    and forgets it once an operator has approved."""
    session = getattr(request, "session", None)
    if not session or not session.get(SESSION_KEY):
        return False
    if is_awaiting_approval(request.user):
        return True
    session[SESSION_KEY] = False
    return False
