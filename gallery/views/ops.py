"""Operations endpoints: /healthz for load balancers and uptime checks, /metrics for
Prometheus."""

import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import Http404, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from gallery import metrics as pipeline_metrics
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


@require_safe
@login_not_required
@never_cache
def metrics(request):
    """The pipeline's figures in Prometheus text, for a scraper holding METRICS_TOKEN.

    Off (404, as if there were no such page) unless METRICS_TOKEN is set; then 401 without
    `Authorization: Bearer <token>`. The token is compared in constant time.
    """
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are off")
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.encode(), token.encode()):
        response = HttpResponse(
            "A bearer token is required.\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(pipeline_metrics.exposition(), content_type=pipeline_metrics.CONTENT_TYPE)
