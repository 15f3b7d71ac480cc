from django.contrib.auth import views as auth_views
from django.urls import path

from gallery.forms import PasswordChangeForm
from gallery.identity import oidc
from gallery.views import accounts, api_tokens

urlpatterns = [
    path("login/", accounts.login, name="login"),
    path("logout/", accounts.sign_out, name="logout"),
    # Where signing out ends; also the post-logout redirect URI registered at the provider.
    path("signed-out/", accounts.signed_out, name="signed_out"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(form_class=PasswordChangeForm),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("signup/", accounts.signup, name="signup"),
    # Personal API tokens: make (shown once), list, revoke.
    path("tokens/", api_tokens.token_list, name="api_tokens"),
    path("tokens/<int:pk>/revoke/", api_tokens.token_revoke, name="api_token_revoke"),
    # Password reset by e-mail (Django's views): ask, "sent", the link, done.
    path("password/reset/", accounts.password_reset, name="password_reset"),
    path("password/reset/sent/", accounts.password_reset_done, name="password_reset_done"),
    path("reset/<uidb64>/<token>/", accounts.password_reset_confirm, name="password_reset_confirm"),
    path("password/reset/done/", accounts.password_reset_complete, name="password_reset_complete"),
    # Invitations: the staff page, and the single-use link an invitee opens.
    path("invitations/", accounts.invitation_list, name="invitation_list"),
    path("invitations/<int:pk>/revoke/", accounts.invitation_revoke, name="invitation_revoke"),
    path("invite/<str:token>/", accounts.invitation_accept, name="invitation_accept"),
    # OpenID Connect: the callback is the redirect URI operators register at their provider.
    path("oidc/authenticate/", oidc.SignInWithProvider.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.ProviderCallback.as_view(), name="oidc_authentication_callback"),
]
