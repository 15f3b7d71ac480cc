"""Identity settings that must agree (`manage.py check`; the deploy ones with --deploy)."""

from django.conf import settings
from django.core.checks import Error, Warning, register


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
