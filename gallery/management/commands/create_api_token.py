"""`manage.py create_api_token USERNAME --name NAME`: a personal API token for operators and
automation, printed as the last line of the output (the only time it is shown). Validated
by the account page's own form: the same choices, the same galleries the person may add to."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gallery.forms import ApiTokenForm
from gallery.models import ApiToken, Gallery


class Command(BaseCommand):
    help = "Make a personal API token for USERNAME and print it (last line)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What will use it, e.g. 'Open WebUI'")
        parser.add_argument(
            "--read-only", action="store_true", help="It may list and download, not generate"
        )
        parser.add_argument(
            "--monthly-images", type=int, help="A monthly image cap of its own (default: none)"
        )
        parser.add_argument(
            "--gallery", help="The name of a gallery of theirs for its images (default: theirs)"
        )

    def handle(self, *args, username, name, read_only, monthly_images, gallery, **options):
        users = get_user_model().objects
        try:
            user = users.get(**{users.model.USERNAME_FIELD: username})
        except users.model.DoesNotExist:
            raise CommandError(f"No account is called “{username}”.") from None
        data = {
            "name": name,
            "access": ApiToken.Access.READ if read_only else ApiToken.Access.GENERATE,
            "monthly_images": monthly_images,
        }
        if gallery:
            found = Gallery.objects.editable_by(user).filter(name=gallery).first()
            if found is None:
                raise CommandError(f"{username} has no gallery “{gallery}” to add images to.")
            data["gallery"] = found.pk
        form = ApiTokenForm(data, user=user)
        if not form.is_valid():
            problems = "; ".join(f"{f}: {' '.join(e)}" for f, e in form.errors.items())
            raise CommandError(problems)
        token = form.save()
        self.stdout.write(f"Made “{token.name}” for {username} ({token.get_access_display()}).")
        self.stdout.write(token.token)
