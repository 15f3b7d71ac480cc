from django.conf import settings


def darkroom(request):
    """What every page's layout needs: whether images are simulated, whether sign-up is open."""
    return {
        "simulated": settings.PIXAZO_SIMULATED,
        "signup_enabled": settings.SIGNUP_ENABLED,
    }
