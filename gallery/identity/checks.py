"""Identity settings that must agree (`manage.py check`; the deploy ones with --deploy)."""

from datetime import timedelta

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DatabaseError

from gallery import proxy

# A proxy seen within this long still counts; one taken away since is forgotten then.
FORWARDED_FOR_MEMORY = timedelta(days=30)


@register()
def identity_settings_agree(app_configs, **kwargs):
    problems = []
    if settings.OIDC_ISSUER and not (settings.OIDC_RP_CLIENT_ID and settings.OIDC_RP_CLIENT_SECRET):
        problems.append(
            Error(
                "OIDC_ISSUER is set, but OIDC_CLIENT_ID or OIDC_CLIENT_SECRET is not",
                hint="Register Darkroom at the provider (redirect URI "
                "<site>/accounts/oidc/callback/) and set both.",
                id="darkroom.E010",
            )
        )
    if settings.OIDC_ONLY and not settings.OIDC_ISSUER:
        problems.append(
            Error(
                "OIDC_ONLY is on but no OIDC_ISSUER is set: nobody could sign in",
                hint="Set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET, or turn it off.",
                id="darkroom.E011",
            )
        )
    if not settings.SIGNUP_ENABLED and settings.SIGNUP_MODE != "closed":
        problems.append(
            Error(
                f"SIGNUP_ENABLED=0 closes sign-up, but SIGNUP_MODE is {settings.SIGNUP_MODE!r}",
                hint="Drop SIGNUP_ENABLED and keep SIGNUP_MODE, which says the same and more.",
                id="darkroom.E012",
            )
        )
    if (
        settings.OIDC_ISSUER
        and settings.OIDC_CREATE_USER
        and not settings.OIDC_ALLOWED_EMAIL_DOMAINS
        and settings.SIGNUP_ENABLED
        and settings.SIGNUP_MODE == "open"
    ):
        problems.append(
            Warning(
                "Anyone with an account at the OpenID Connect provider can sign in and generate: "
                "OIDC_ALLOWED_EMAIL_DOMAINS is empty and SIGNUP_MODE is open",
                hint="List your domains in OIDC_ALLOWED_EMAIL_DOMAINS, or SIGNUP_MODE=approval.",
                id="darkroom.W010",
            )
        )
    return problems


@register(deploy=True)
def identity_deploy(app_configs, **kwargs):
    problems = []
    if settings.OIDC_ISSUER and not settings.OIDC_ISSUER.startswith("https://"):
        problems.append(
            Warning(
                "OIDC_ISSUER is not an https:// URL: keys and tokens would cross the network "
                "in the clear",
                id="darkroom.W011",
            )
        )
    backend = settings.MAILERS.get("default", {}).get("BACKEND", "")
    if backend.endswith(".smtp.EmailBackend") and "@localhost" in settings.DEFAULT_FROM_EMAIL:
        problems.append(
            Warning(
                "EMAIL_URL is set but DEFAULT_FROM_EMAIL is not: mail would come from "
                "darkroom@localhost, which mail servers usually refuse",
                hint='e.g. DEFAULT_FROM_EMAIL="Darkroom <darkroom@example.com>"',
                id="darkroom.W012",
            )
        )
    return problems


@register(deploy=True)
def forwarded_for_without_a_trusted_proxy(app_configs, **kwargs):
    """Requests came with X-Forwarded-For while no proxy is trusted (gallery/proxy.py notes
    them): every visitor would share the proxy's address for sign-in throttling."""
    if settings.TRUSTED_PROXY_COUNT:
        return []
    from gallery.models import Sighting

    try:
        seen = Sighting.last_seen(proxy.FORWARDED_FOR_UNTRUSTED, within=FORWARDED_FOR_MEMORY)
    except DatabaseError:
        return []  # no database to ask yet (an image being built, a first deployment)
    if seen is None:
        return []
    return [
        Warning(
            f"Requests reached Darkroom with X-Forwarded-For (last on {seen:%Y-%m-%d %H:%M} "
            "UTC) while TRUSTED_PROXY_COUNT is 0: behind a proxy, every visitor shares its "
            "address, so one person's wrong passwords pause sign-in for everybody",
            hint="Set TRUSTED_PROXY_COUNT to the number of reverse proxies in front of "
            "Darkroom (1 for one TLS proxy). If clients reach Darkroom directly, leave it at 0 "
            "(the header came from a client) and have the edge drop X-Forwarded-For.",
            id="darkroom.W013",
        )
    ]
