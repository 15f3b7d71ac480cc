"""Account pages: sign in (password and/or the team's identity provider), sign out, sign up,
password reset by e-mail, invitations (the staff page and the link an invitee opens).

Who may come in is decided in gallery/identity/admission.py; OpenID Connect's own two
views (off to the provider and back) are in gallery/identity/oidc.py.
"""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.auth import login as sign_in
from django.contrib.auth import logout as auth_logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gallery import throttles
from gallery.forms import LoginForm, SignupForm
from gallery.identity import admission, mail, oidc, throttling
from gallery.identity.forms import (
    AcceptInvitationForm,
    InvitationForm,
    PasswordResetForm,
    SetPasswordForm,
)
from gallery.models import Invitation

PASSWORD_BACKEND = "django.contrib.auth.backends.ModelBackend"
OIDC_BACKEND = "gallery.identity.oidc.TeamOIDCBackend"


def sign_in_options(request, login_hint=""):
    """What the sign-in and invitation pages offer: the provider's button, the password form."""
    options = {"password_sign_in": not settings.OIDC_ONLY, "provider": None}
    if admission.oidc_configured():
        passed_on = {"login_hint": login_hint} if login_hint else request.GET.dict()
        query = urlencode({k: v for k, v in passed_on.items() if k in ("next", "login_hint")})
        options["provider"] = {
            "label": settings.OIDC_LABEL,
            "url": reverse("oidc_authentication_init") + (f"?{query}" if query else ""),
            "reachable": oidc.provider_reachable(),
        }
    return options


@require_http_methods(["GET", "POST"])
def login(request):
    if settings.OIDC_ONLY and request.method == "POST":
        # Passwords are off here; operators sign in to admin at /admin/login/.
        return HttpResponseNotAllowed(["GET"])
    return sign_in_page(request)


def sign_in_page(request, **extra):
    view = auth_views.LoginView.as_view(
        authentication_form=LoginForm,
        redirect_authenticated_user=True,
        extra_context={**sign_in_options(request), **extra},
    )
    return view(request)


@require_POST
def sign_out(request):
    """Sign out of Darkroom and, for a session the identity provider signed in, of the
    provider too when its discovery names an end_session_endpoint (RP-initiated logout):
    on a shared computer, the next person's "Sign in with ..." then asks who they are.
    Either way the browser ends on the signed-out page."""
    through_provider = request.session.get(BACKEND_SESSION_KEY) == OIDC_BACKEND
    auth_logout(request)
    if through_provider and admission.oidc_configured():
        signed_out_url = request.build_absolute_uri(reverse("signed_out"))
        try:
            if provider_sign_out := oidc.end_session_url(signed_out_url):
                return redirect(provider_sign_out)
        except oidc.ProviderUnreachable:
            label = settings.OIDC_LABEL
            messages.warning(
                request,
                f"{label} can't be reached, so you may still be signed in there: on a shared "
                f"computer, sign out at {label} too.",
            )
    return redirect("signed_out")


@require_GET
def signed_out(request):
    """Where signing out ends (also the post-logout redirect URI registered at the provider):
    the sign-in page, saying so."""
    return sign_in_page(request, signed_out=True)


def throttled(request, template, context, refusal):
    """The page that was asked for, saying what was refused and when to try again: 429."""
    context = {**context, "throttled": throttling.explain(refusal)}
    response = render(request, template, context, status=429)
    return throttles.retry_after_response(response, refusal)


@require_http_methods(["GET", "POST"])
def signup(request):
    if not admission.password_signup_open():
        raise Http404("Sign-up is closed on this instance")
    if request.user.is_authenticated:
        return redirect("studio")
    approval_needed = admission.signup_mode() == "approval"
    if request.method == "POST" and (refusal := throttling.signup(request)):
        # The form again, unchecked (no errors to fix), with the chosen name kept.
        form = SignupForm(initial={"username": request.POST.get("username", "")[:150]})
        context = {"form": form, "approval_needed": approval_needed}
        return throttled(request, "registration/signup.html", context, refusal)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = admission.sign_up(form)
        sign_in(request, user, backend=PASSWORD_BACKEND)  # the layout says if they wait
        return redirect("studio")
    context = {"form": form, "approval_needed": approval_needed}
    return render(request, "registration/signup.html", context)


# -- password reset: Django's own views, on while e-mail works and passwords are in use --------


def by_email_only(view):
    """Password reset works while e-mail does and passwords are in use (not OIDC_ONLY)."""

    @wraps(view)
    def guarded(request, *args, **kwargs):
        if settings.OIDC_ONLY or not settings.EMAIL_ENABLED:
            raise Http404("Password reset by e-mail is not available here")
        return view(request, *args, **kwargs)

    return guarded


class PasswordResetView(auth_views.PasswordResetView):
    """Django's, with the reset mail throttled per address and per e-mail address. The answer
    is "sent", or the same refusal, whether or not the address has an account."""

    form_class = PasswordResetForm

    def form_valid(self, form):
        if refusal := throttling.reset_mail(self.request, form.cleaned_data["email"]):
            context = self.get_context_data(form=form)
            return throttled(self.request, self.template_name, context, refusal)
        return super().form_valid(form)


password_reset = by_email_only(PasswordResetView.as_view())
password_reset_done = by_email_only(auth_views.PasswordResetDoneView.as_view())
password_reset_confirm = by_email_only(
    auth_views.PasswordResetConfirmView.as_view(form_class=SetPasswordForm)
)
password_reset_complete = by_email_only(auth_views.PasswordResetCompleteView.as_view())


# -- invitations ----------------------------------------------------------------------------


def staff_only(view):
    """Staff who may add invitations; anyone else gets a 404 (signed out: the sign-in page)."""

    @wraps(view)
    @login_required
    def guarded(request, *args, **kwargs):
        if not (request.user.is_staff and request.user.has_perm("gallery.add_invitation")):
            raise Http404("No such page")
        return view(request, *args, **kwargs)

    return guarded


@require_http_methods(["GET", "POST"])
@staff_only
def invitation_list(request):
    form = InvitationForm(request.POST or None)
    refusal = None
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        try:
            mail.invite(request, email, invited_by=request.user)
        except mail.MailThrottled as not_sent:
            refusal = not_sent.refusal  # the form again, with when to try again
        except mail.MailNotSent:
            messages.error(
                request, f"The invitation e-mail to {email} couldn't be sent; try again."
            )
        else:
            messages.success(
                request, f"Invitation sent to {email}. The link works for 7 days, once."
            )
            return redirect("invitation_list")
    context = {
        "form": form,
        "invitations": Invitation.objects.select_related("invited_by", "accepted_by")[:200],
        "email_enabled": settings.EMAIL_ENABLED,
    }
    if refusal:
        return throttled(request, "registration/invitations.html", context, refusal)
    return render(request, "registration/invitations.html", context)


@require_POST
@staff_only
def invitation_revoke(request, pk):
    invitation = get_object_or_404(Invitation, pk=pk)
    if invitation.revoke():
        messages.success(request, f"The invitation for {invitation.email} no longer works.")
    return redirect("invitation_list")


@require_http_methods(["GET", "POST"])
def invitation_accept(request, token):
    """The invitation link: make the invited account (approved at once), in any sign-up mode."""
    invitation = Invitation.find_pending(token)
    if invitation is None:
        return render(request, "registration/invitation_invalid.html", status=404)
    if request.user.is_authenticated:
        return render(request, "registration/invitation_accept.html", {"invitation": invitation})
    form = None
    if not settings.OIDC_ONLY:
        form = AcceptInvitationForm(request.POST or None, invitation=invitation)
    if request.method == "POST" and form is not None and form.is_valid():
        user = admission.accept_invitation(invitation, form)
        if user is None:  # used in another tab a moment ago
            return render(request, "registration/invitation_invalid.html", status=404)
        sign_in(request, user, backend=PASSWORD_BACKEND)
        messages.success(request, "Welcome to Darkroom! Your account is ready.")
        return redirect("studio")
    context = {"invitation": invitation, "form": form, **sign_in_options(request, invitation.email)}
    return render(request, "registration/invitation_accept.html", context)
