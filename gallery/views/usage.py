"""The Usage page: what was spent, by month, per person and per gallery, and the ledger's
lines as CSV for finance.

Everyone sees their own months and those of the galleries they own (whose budgets they
set); staff see everyone's and the team's. Who may read what is the ledger's own rule
(`UsageEntry.objects.visible_to`, `UsageTotal.objects.visible_to`); the figures are the
ledger's month totals, so the page costs the same however long the history is.
"""

import csv
from datetime import date

from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from gallery import spend
from gallery.models import TeamBudget, UsageEntry, UsageTotal, month_of

Scope = UsageTotal.Scope
# The months listed on the page: a year and a bit.
MONTHS_SHOWN = 13
CSV_COLUMNS = [
    "when",
    "month",
    "kind",
    "person",
    "gallery",
    "generation",
    "quality",
    "size",
    "images",
    "unit price",
    "estimated cost",
    "note",
]


def _month_asked(request):
    """The month in ?month=YYYY-MM, or this month (a bad value means this month)."""
    try:
        year, month = (int(part) for part in request.GET.get("month", "").split("-"))
        return date(year, month, 1)
    except ValueError:
        return month_of()


@require_GET
@login_required
def usage(request):
    month = _month_asked(request)
    visible = UsageTotal.objects.visible_to(request.user)
    in_month = visible.filter(month=month).select_related("user", "gallery")
    my_months = list(
        visible.filter(scope=Scope.PERSON, user=request.user).order_by("-month")[:MONTHS_SHOWN]
    )
    mine = next((row for row in my_months if row.month == month), None)
    months = sorted({month_of(), month, *(row.month for row in my_months)}, reverse=True)
    context = {
        "month": month,
        "is_this_month": month == month_of(),
        "months": months,
        "mine": mine,
        "my_months": my_months,
        "reserved": spend.monthly_usage(request.user).reserved if month == month_of() else 0,
        "galleries": in_month.filter(scope=Scope.GALLERY).order_by("-cost", "gallery__name"),
        "people": [],
        "team": None,
    }
    if request.user.is_staff:
        context["people"] = in_month.filter(scope=Scope.PERSON).order_by("-cost", "user__username")
        context["team"] = in_month.filter(scope=Scope.TEAM).first()
        context["team_budget"] = TeamBudget.current()
    return render(request, "gallery/usage.html", context)


def _text(value):
    # Names are people's own words: one that starts like a formula stays text in a
    # spreadsheet (OWASP's CSV injection advice).
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class _Echo:
    """csv.writer writes to it; each row goes straight to the response."""

    def write(self, value):
        return value


@require_GET
@login_required
def usage_csv(request):
    """The ledger's lines for the month asked for, that the caller may read, streamed."""
    month = _month_asked(request)
    entries = (
        UsageEntry.objects.visible_to(request.user)
        .filter(month=month)
        .order_by("created_at", "pk")
        .iterator(chunk_size=2000)
    )
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for entry in entries:
            yield writer.writerow(
                [
                    entry.created_at.isoformat(),
                    entry.month.strftime("%Y-%m"),
                    entry.kind,
                    _text(entry.username),
                    _text(entry.gallery_name),
                    entry.generation_id or "",
                    entry.quality,
                    entry.image_size,
                    entry.images,
                    entry.unit_price,
                    entry.cost,
                    _text(entry.note),
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    filename = f"darkroom-usage-{month:%Y-%m}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
