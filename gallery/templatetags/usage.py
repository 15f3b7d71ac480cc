from django import template

from gallery import spend

register = template.Library()


@register.inclusion_tag("gallery/_usage.html")
def usage_summary(user):
    """This month's images, estimated cost and quota: `{% load usage %}{% usage_summary user %}`."""
    return {"usage": spend.monthly_usage(user)}


@register.filter
def money(amount):
    """An estimated amount in the price table's currency: $0.13, or $0.009 below a cent."""
    return spend.money(amount)
