from django import template

from gallery import spend

register = template.Library()


@register.inclusion_tag("gallery/_usage.html")
def usage_summary(user):
    """This month's images, estimated cost and quota: `{% load usage %}{% usage_summary user %}`."""
    return {"usage": spend.monthly_usage(user)}
