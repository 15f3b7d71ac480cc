"""Validation that mirrors the provider contract, so bad input never reaches the gateway."""

from datetime import timedelta

from django import forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import dateformat, timezone

from gallery import spend
from gallery.models import (
    BACKGROUNDS,
    IMAGE_SIZES,
    MAX_IMAGES,
    OUTPUT_FORMATS,
    PROMPT_MAX_LENGTH,
    QUALITIES,
    ApiToken,
    Gallery,
    GalleryMember,
    Generation,
    Role,
    ShareLink,
    team_members_q,
)
from gallery.models.galleries import MEMBER_ROLES


class LabelsAbove:
    """Labels stand above their fields, so they end without Django's colon."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class LoginForm(LabelsAbove, auth_forms.AuthenticationForm):
    pass


class SignupForm(LabelsAbove, auth_forms.UserCreationForm):
    pass


class PasswordChangeForm(LabelsAbove, auth_forms.PasswordChangeForm):
    pass


class GalleryChoiceField(forms.ModelChoiceField):
    """A gallery select that names the owner of other people's galleries."""

    def label_from_instance(self, gallery):
        if gallery.role is Role.OWNER:
            return gallery.name
        return f"{gallery.name} · {gallery.owner.get_username()}"

    def offer(self, galleries):
        """Show these already-fetched galleries as the choices, so one query of the page's
        serves several selects. Validation still asks the field's queryset."""
        blank = [] if self.empty_label is None else [("", self.empty_label)]
        self.widget.choices = blank + [(g.pk, self.label_from_instance(g)) for g in galleries]


class GenerationForm(LabelsAbove, forms.ModelForm):
    """Field names are the API's parameter names; defaults are the contract's example."""

    prompt = forms.CharField(
        max_length=PROMPT_MAX_LENGTH,
        strip=True,
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": "A lighthouse at dusk, painted in watercolour…"}
        ),
        error_messages={"required": "Describe the image you want: the prompt can't be empty."},
    )
    image_size = forms.ChoiceField(choices=IMAGE_SIZES, initial="1024x1024", label="Size")
    background = forms.ChoiceField(choices=BACKGROUNDS, initial="auto")
    quality = forms.ChoiceField(choices=QUALITIES, initial="high")
    num_images = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in range(1, MAX_IMAGES + 1)],
        coerce=int,
        initial=1,
        label="Number of images",
    )
    output_format = forms.ChoiceField(choices=OUTPUT_FORMATS, initial="png", label="Format")
    gallery = GalleryChoiceField(
        queryset=Gallery.objects.none(),
        required=False,
        empty_label=None,
        error_messages={"invalid_choice": "You can't add images to that gallery."},
    )

    # Why the last reserve() was refused (a spend.Refused), if it was.
    refused = None

    class Meta:
        model = Generation
        fields = [
            "prompt",
            "image_size",
            "background",
            "quality",
            "num_images",
            "output_format",
            "gallery",
        ]

    def __init__(self, *args, owner, api_token=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner  # who asks: it counts against their quota
        # Asked through an API token (gallery/api/): its own cap counts too, and without a
        # gallery named, the images go to the token's gallery.
        self.api_token = api_token
        # Their own galleries and those they contribute to.
        galleries = Gallery.objects.editable_by(owner).select_related("owner")
        self.fields["gallery"].queryset = galleries

    def default_gallery(self):
        """Where the images go when the request names no gallery (and the token, if any,
        none either): the owner's default."""
        return Gallery.default_for(self.owner)

    def clean(self):
        cleaned = super().clean()
        token = self.api_token
        if not cleaned.get("gallery") and token is not None and token.gallery_id is not None:
            # The token's gallery, while its owner may still add to it.
            cleaned["gallery"] = self.fields["gallery"].queryset.filter(pk=token.gallery_id).first()
            if cleaned["gallery"] is None:
                self.add_error(
                    "gallery",
                    "This token's gallery no longer takes your images (it was deleted, or "
                    "you may no longer add to it): name another gallery, or change the token.",
                )
        if cleaned.get("background") == "transparent" and cleaned.get("output_format") == "jpeg":
            self.add_error(
                "output_format",
                "JPEG has no transparency: choose PNG or WebP for a transparent background.",
            )
        return cleaned

    def ask(self):
        """What this (valid) request would spend, for the price shown before Generate."""
        data = self.cleaned_data
        gallery = data.get("gallery") or self.default_gallery()
        return spend.Ask.of(
            self.owner,
            gallery,
            data["quality"],
            data["image_size"],
            data["num_images"],
            self.api_token,
        )

    def save(self, commit=True):
        """The generation, saved PENDING through the one reservation (gallery/spend.py):
        raises spend.Refused, saving nothing, when it doesn't fit a limit or the account
        waits for approval."""
        generation = super().save(commit=False)
        generation.owner = self.owner
        generation.api_token = self.api_token
        if generation.gallery_id is None:
            generation.gallery = self.default_gallery()
        if commit:
            ask = spend.Ask.for_generation(generation)
            _, self.limits_after = spend.reserve_and_tell(ask, generation.save)
        return generation

    def reserve(self):
        """save(), or None with the refusal among the form's errors (which limit, what is
        left): what a page or the API shows. `refused` keeps it for the caller."""
        self.refused = None
        try:
            return self.save()
        except spend.Refused as refused:
            self.refused = refused
            self.add_error(None, forms.ValidationError(refused.message, code="limit"))
            return None


class GalleryForm(forms.ModelForm):
    """Create (instance=Gallery(owner=...)) or rename a gallery."""

    class Meta:
        model = Gallery
        fields = ["name"]
        widgets = {"name": forms.TextInput(attrs={"placeholder": "Moodboard, Client X, Posters…"})}

    def clean_name(self):
        # The owner is not a form field, so ModelForm skips the (owner, name) constraint;
        # checked here, ignoring case, so "Posters" and "posters" can't both exist.
        name = self.cleaned_data["name"]
        taken = Gallery.objects.filter(owner=self.instance.owner, name__iexact=name)
        if taken.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"You already have a gallery called “{name}”.")
        return name


class GalleryBudgetForm(LabelsAbove, forms.ModelForm):
    """The owner's monthly budget for a gallery (gallery/spend.py holds everyone to it)."""

    class Meta:
        model = Gallery
        fields = ["monthly_budget"]
        labels = {"monthly_budget": "Budget per month (USD)"}
        help_texts = {
            "monthly_budget": "Every generation into this gallery counts against it, whoever "
            "makes it; over it, Generate says so and sends nothing. Empty: no limit."
        }
        widgets = {
            "monthly_budget": forms.NumberInput(
                attrs={"min": "0", "step": "0.01", "placeholder": "No limit"}
            )
        }

    def clean_monthly_budget(self):
        budget = self.cleaned_data["monthly_budget"]
        if budget is not None and budget < 0:
            raise forms.ValidationError("A budget can't be below zero: leave it empty for none.")
        return budget


class GalleryDeleteForm(forms.Form):
    KEEP, DELETE = "keep", "delete"

    images = forms.ChoiceField(
        choices=[
            (KEEP, "Move its images to the default gallery"),
            (DELETE, "Move its images to the trash"),
        ],
        initial=KEEP,
        widget=forms.RadioSelect,
        label="Its images",
    )

    @property
    def keep_images(self):
        return self.cleaned_data["images"] == self.KEEP


class ShareLinkForm(forms.ModelForm):
    """A new link (no instance), or a live link's settings (its token stays the same).

    Field names are what people and scripts post: `label`, `expires_in`, `password`,
    `allow_downloads` and `show_prompts` (checkboxes), `max_views`; editing adds
    `remove_password`. An empty password when editing keeps the one the link has.
    """

    LIFETIMES = {
        "1": timedelta(days=1),
        "7": timedelta(days=7),
        "30": timedelta(days=30),
        "never": None,
    }
    KEEP = "keep"
    PASSWORD_MIN_LENGTH = 6
    SETTINGS = ["label", "allow_downloads", "show_prompts", "max_views", "expires_at", "password"]

    expires_in = forms.ChoiceField(
        choices=[("1", "1 day"), ("7", "7 days"), ("30", "30 days"), ("never", "Never")],
        initial="7",
        label="Expires after",
    )
    password = forms.CharField(
        required=False,
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Optional. Visitors type it once per browser session.",
    )
    remove_password = forms.BooleanField(required=False, label="Remove the password")
    max_views = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1_000_000,
        label="Maximum views",
        widget=forms.NumberInput(attrs={"placeholder": "No limit"}),
        help_text="Each browser that opens the link uses one; link previews in chat apps don't.",
    )

    class Meta:
        model = ShareLink
        fields = ["label", "allow_downloads", "show_prompts", "max_views"]
        widgets = {"label": forms.TextInput(attrs={"placeholder": "Who is it for?"})}
        labels = {"allow_downloads": "Allow downloads", "show_prompts": "Show prompts"}
        help_texts = {
            "label": "Only you see the label.",
            "allow_downloads": "Off: no originals or zip; images are shown at display size.",
            "show_prompts": "Off: no prompt anywhere on the link's pages or in file names.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # Editing: the expiry stays as it is unless another is chosen.
            field = self.fields["expires_in"]
            field.choices = [(self.KEEP, self._current_expiry()), *field.choices]
            field.initial = self.KEEP
            field.label = "Expires"
            self.fields["password"].help_text = (
                "Empty keeps the current password."
                if self.instance.has_password
                else "Optional. Visitors type it once per browser session."
            )
            self.fields["password"].label = (
                "New password" if self.instance.has_password else "Password"
            )
        if not self.instance.has_password:
            del self.fields["remove_password"]

    def _current_expiry(self):
        expires_at = self.instance.expires_at
        if expires_at is None:
            return "As now: never"
        return f"As now: {dateformat.format(timezone.localtime(expires_at), 'j M Y, H:i')}"

    def clean_password(self):
        password = self.cleaned_data["password"]
        if password and len(password) < self.PASSWORD_MIN_LENGTH:
            raise forms.ValidationError(
                f"Use at least {self.PASSWORD_MIN_LENGTH} characters, or leave it empty for a "
                "link without a password."
            )
        return password

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") and cleaned.get("remove_password"):
            self.add_error("password", "Type a new password or remove the password, not both.")
        return cleaned

    def save(self, commit=True):
        link = super().save(commit=False)
        choice = self.cleaned_data["expires_in"]
        if choice != self.KEEP:
            lifetime = self.LIFETIMES[choice]
            link.expires_at = timezone.now() + lifetime if lifetime else None
        if self.cleaned_data["password"]:
            link.set_password(self.cleaned_data["password"])
        elif self.cleaned_data.get("remove_password"):
            link.set_password("")
        if commit:
            # Only the settings: visitors may be counting views on this row meanwhile.
            link.save(update_fields=self.SETTINGS if link.pk else None)
        return link


class MoveGenerationForm(forms.Form):
    """Where to move a generation: any gallery the mover may add to."""

    gallery = GalleryChoiceField(queryset=Gallery.objects.none(), empty_label=None)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["gallery"].queryset = Gallery.objects.editable_by(user).select_related("owner")


class BulkActionForm(forms.Form):
    """What the select bar asks for the selected generations (posted as `g`, read by the
    view): an action, and for a move the gallery, any the mover may add to."""

    ACTIONS = [
        ("move", "Move to gallery"),
        ("favourite", "Add to favourites"),
        ("unfavourite", "Remove from favourites"),
        ("download", "Download .zip"),
        ("compare", "Compare"),
        ("trash", "Delete"),
    ]

    action = forms.ChoiceField(choices=ACTIONS)
    gallery = GalleryChoiceField(
        queryset=Gallery.objects.none(), required=False, empty_label=None, label="Move to"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, auto_id="bulk-%s", **kwargs)
        self.fields["gallery"].queryset = Gallery.objects.editable_by(user).select_related("owner")

    def clean(self):
        data = super().clean()
        if data.get("action") == "move" and not data.get("gallery"):
            self.add_error("gallery", "Choose the gallery to move them to.")
        return data


class GalleryMemberForm(LabelsAbove, forms.Form):
    """Add a teammate to a gallery by username or e-mail, as viewer or contributor."""

    member = forms.CharField(
        max_length=254,
        label="Username or e-mail",
        widget=forms.TextInput(attrs={"placeholder": "bob or bob@example.com"}),
        error_messages={"required": "Name the person to add: their username or e-mail."},
    )
    role = forms.ChoiceField(choices=MEMBER_ROLES, initial=Role.VIEWER.value)

    def __init__(self, *args, gallery, **kwargs):
        super().__init__(*args, **kwargs)
        self.gallery = gallery

    def clean_member(self):
        name = self.cleaned_data["member"].strip()
        users = get_user_model().objects.filter(Q(username__iexact=name) | Q(email__iexact=name))
        # Only teammates may be added, and an account that isn't one (unknown, inactive,
        # waiting for approval) gets the same answer: the form says nothing of who exists.
        found = list(users.filter(team_members_q())[:2])
        if not found:
            raise forms.ValidationError(f"No teammate here goes by “{name}”.")
        if len(found) > 1:
            raise forms.ValidationError(
                f"More than one teammate uses “{name}”: add them by their username."
            )
        user = found[0]
        who = user.get_username()
        if user.pk == self.gallery.owner_id:
            raise forms.ValidationError("That's you: you own this gallery already.")
        current = self.gallery.members.filter(user=user).first()
        if current is not None:
            raise forms.ValidationError(
                f"{who} is already a {current.get_role_display().lower()} of this gallery."
            )
        return user

    def save(self, added_by):
        return self.gallery.add_member(
            self.cleaned_data["member"], self.cleaned_data["role"], added_by=added_by
        )


class MemberRoleForm(forms.ModelForm):
    class Meta:
        model = GalleryMember
        fields = ["role"]


class GalleryVisibilityForm(forms.ModelForm):
    class Meta:
        model = Gallery
        fields = ["visibility"]
        widgets = {"visibility": forms.RadioSelect}
        labels = {"visibility": "Who can see it"}


class StudioViewField(GalleryChoiceField):
    """What the studio shows: what the person made (empty, the default), everything they
    may see (EVERYTHING), or one gallery, whoever made its images."""

    EVERYTHING = "all"
    MINE_LABEL = "Made by me"
    EVERYTHING_LABEL = "Everything I can see"

    def offer(self, galleries):
        super().offer(galleries)
        self.widget.choices.insert(1, (self.EVERYTHING, self.EVERYTHING_LABEL))

    def clean(self, value):
        if value == self.EVERYTHING:
            return self.EVERYTHING
        return super().clean(value)


class StudioFilterForm(forms.Form):
    """The studio's search and filters (GET). An invalid value only drops that filter."""

    ACTIVE = "active"
    STATUSES = [
        ("", "Any status"),
        (ACTIVE, "Queued or in progress"),
        (Generation.Status.COMPLETED, "Completed"),
        (Generation.Status.FAILED, "Failed"),
        (Generation.Status.CANCELLED, "Cancelled"),
    ]

    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search prompts",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search prompts…"}),
    )
    status = forms.ChoiceField(choices=STATUSES, required=False)
    image_size = forms.ChoiceField(
        choices=[("", "Any size"), *IMAGE_SIZES], required=False, label="Size"
    )
    output_format = forms.ChoiceField(
        choices=[("", "Any format"), *OUTPUT_FORMATS], required=False, label="Format"
    )
    favourite = forms.BooleanField(required=False, label="Favourites")
    gallery = StudioViewField(
        queryset=Gallery.objects.none(),
        required=False,
        empty_label=StudioViewField.MINE_LABEL,
        label="Show",
    )

    def __init__(self, *args, user, **kwargs):
        # Its own ids: the generate form on the same page has fields of the same names.
        super().__init__(*args, auto_id="filter-%s", **kwargs)
        self.user = user
        # Every gallery they may see: their own, shared with them, open to the team.
        self.fields["gallery"].queryset = Gallery.objects.visible_to(user).select_related("owner")

    @property
    def viewed_gallery(self):
        """The one gallery shown, or None (what the person made, or everything)."""
        view = getattr(self, "cleaned_data", {}).get("gallery")
        return view if isinstance(view, Gallery) else None

    @property
    def shows_everything(self):
        return getattr(self, "cleaned_data", {}).get("gallery") == StudioViewField.EVERYTHING

    def view_label(self):
        """What the view holds, in the person's words (the page's heading)."""
        if gallery := self.viewed_gallery:
            return gallery.name
        if self.shows_everything:
            return StudioViewField.EVERYTHING_LABEL
        return StudioViewField.MINE_LABEL

    def apply(self, generations):
        """Filter `generations` (visible to the user) as asked. Without a gallery, what the
        user made themselves; with one, everything in it, whoever made it; with
        EVERYTHING, all of them."""
        data = getattr(self, "cleaned_data", {})
        if not data.get("gallery"):
            generations = generations.made_by(self.user)
        elif gallery := self.viewed_gallery:
            generations = generations.filter(gallery=gallery)
        if data.get("q"):
            generations = generations.filter(prompt__icontains=data["q"])
        if data.get("status") == self.ACTIVE:
            generations = generations.unfinished()
        elif data.get("status"):
            generations = generations.filter(status=data["status"])
        for name in ("image_size", "output_format"):
            if data.get(name):
                generations = generations.filter(**{name: data[name]})
        if data.get("favourite"):
            generations = generations.filter(caller_favourite=True)
        return generations

    def refuses_gallery(self):
        """A gallery was asked for that the user may not see (or that doesn't exist)."""
        return bool(self.data.get("gallery")) and self.has_error("gallery")

    def is_filtering(self):
        """Whether anything narrows the view beyond choosing it (search, status, ...)."""
        data = getattr(self, "cleaned_data", {})
        return any(value for name, value in data.items() if name != "gallery")


class ApiTokenForm(LabelsAbove, forms.ModelForm):
    """A new personal API token: its name, what it may do, its own monthly cap, where its
    images go (a gallery its owner may add to)."""

    gallery = GalleryChoiceField(
        queryset=Gallery.objects.none(),
        required=False,
        empty_label="Your default gallery",
        help_text=ApiToken._meta.get_field("gallery").help_text,
        error_messages={"invalid_choice": "You can't add images to that gallery."},
    )

    class Meta:
        model = ApiToken
        fields = ["name", "access", "monthly_images", "gallery"]
        widgets = {
            "name": forms.TextInput(attrs={"placeholder": "Open WebUI, nightly catalogue…"}),
            "access": forms.RadioSelect,
            "monthly_images": forms.NumberInput(attrs={"min": "1", "placeholder": "No cap"}),
        }
        labels = {"access": "It may"}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, instance=ApiToken(user=user), **kwargs)
        self.fields["gallery"].queryset = Gallery.objects.editable_by(user).select_related("owner")

    def clean_monthly_images(self):
        cap = self.cleaned_data["monthly_images"]
        if cap is not None and cap < 1:
            raise forms.ValidationError("A cap of at least 1 image, or empty for none.")
        return cap
