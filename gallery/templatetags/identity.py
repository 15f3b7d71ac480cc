from django import template

from gallery.models import AccountApproval

register = template.Library()


@register.simple_tag
def accounts_waiting_for_approval(limit=20):
    """Who waits for an operator, for the admin index (oldest first)."""
    waiting = AccountApproval.objects.waiting().filter(user__is_active=True, user__is_staff=False)
    return list(waiting.select_related("user").order_by("requested_at")[:limit])
