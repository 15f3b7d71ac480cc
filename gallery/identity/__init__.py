"""Who may come in, and how: sign-up modes and approval (`admission`), OpenID Connect sign-in
(`oidc`: mozilla-django-oidc with discovery, checked ID tokens and plain refusals),
invitations and the e-mail that carries them (`mail`), the forms of those pages (`forms`)
and the settings that must agree (`checks`). The pages themselves are in
gallery/views/accounts.py; the rules they store are in gallery/models/accounts.py."""
