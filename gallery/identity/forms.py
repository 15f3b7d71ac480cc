"""Forms of the invitation and password reset pages."""

from django import forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model

from gallery.forms import LabelsAbove, SignupForm
from gallery.identity.admission import username_from_email
from gallery.models import Invitation

User = get_user_model()


class InvitationForm(LabelsAbove, forms.ModelForm):
    class Meta:
        model = Invitation
        fields = ["email"]
        widgets = {"email": forms.EmailInput(attrs={"placeholder": "ada@example.com"})}

    def clean_email(self):
        email = self.cleaned_data["email"]
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                f"{email} already has an account (waiting ones are approved in admin)."
            )
        if Invitation.objects.pending().for_email(email).exists():
            raise forms.ValidationError(f"{email} already has a pending invitation.")
        return email


class AcceptInvitationForm(SignupForm):
    """Sign-up for the invited address: the person picks a user name and a password."""

    def __init__(self, *args, invitation, **kwargs):
        super().__init__(*args, **kwargs)
        self.invitation = invitation
        self.fields["username"].initial = username_from_email(invitation.email)

    def clean(self):
        cleaned = super().clean()
        if User.objects.filter(email__iexact=self.invitation.email).exists():
            raise forms.ValidationError(f"{self.invitation.email} already has an account.")
        return cleaned

    def save(self, commit=True):
        user = super().save(commit=False)
        user.email = self.invitation.email
        if commit:
            user.save()
        return user


class PasswordResetForm(LabelsAbove, auth_forms.PasswordResetForm):
    pass


class SetPasswordForm(LabelsAbove, auth_forms.SetPasswordForm):
    pass
