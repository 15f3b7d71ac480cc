"""Operations endpoints: /healthz for load balancers and uptime checks."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from gallery.models import Lease
from gallery.tasks import WORKER_HEARTBEAT


@require_safe
@login_not_required
@never_cache
def healthz(request):
    """200 when the database answers and a worker beat recently, else 503.

    Open to anyone, so it says only ok or not, and how long ago a worker was seen. Two
    tiny queries: the heartbeat is written by the watchdog task every minute or so.
    """
    checks = {"database": "ok", "worker": "never seen"}
    seen_seconds_ago = None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        last_beat = Lease.last_beat(WORKER_HEARTBEAT)
    except DatabaseError:
        checks["database"] = "error"
        checks["worker"] = "unknown"
    else:
        if last_beat is not None:
            seen_seconds_ago = round((timezone.now() - last_beat).total_seconds())
            fresh = seen_seconds_ago <= settings.WORKER_STALE_SECONDS
            checks["worker"] = "ok" if fresh else "stale"
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "unhealthy", **checks}
    if seen_seconds_ago is not None:
        body["worker_seen_seconds_ago"] = seen_seconds_ago
    return JsonResponse(body, status=200 if healthy else 503)
