from django.conf import settings

from gallery.identity.admission import password_signup_open
from gallery.identity.signals import still_awaiting_approval
from gallery.views.trash import pop_toast


def darkroom(request):
    """What every page's layout needs: whether images are simulated, whether sign-up is open,
    whether the signed-in person still waits for approval (asked only if a page shows it)."""
    return {
        "simulated": settings.PIXAZO_SIMULATED,
        "signup_enabled": password_signup_open(),
        "password_reset_available": settings.EMAIL_ENABLED and not settings.OIDC_ONLY,
        "awaiting_approval": lambda: still_awaiting_approval(request),
        # The toast a redirect left (after a delete: with Undo), shown once by base.html.
        "toast": lambda: pop_toast(request),
    }
