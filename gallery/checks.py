from django.conf import settings
from django.core.checks import Error, Warning, register

# The watchdog schedule beats every minute, and django-q2 fires schedules up to ~30 s late.
WATCHDOG_WORST_GAP_SECONDS = 90


@register()
def q_cluster_retry_exceeds_timeout(app_configs, **kwargs):
    # django-q2 hands a task to a second worker once `retry` passes: it must outlast `timeout`.
    conf = settings.Q_CLUSTER
    if conf.get("retry", 60) <= conf.get("timeout", 60):
        return [
            Error("Q_CLUSTER['retry'] must be larger than Q_CLUSTER['timeout']", id="darkroom.E001")
        ]
    return []


@register()
def worker_stale_after_more_than_a_watchdog_gap(app_configs, **kwargs):
    # Shorter, and /healthz would call a healthy worker stale between two beats.
    if settings.WORKER_STALE_SECONDS <= WATCHDOG_WORST_GAP_SECONDS:
        return [
            Warning(
                f"WORKER_STALE_SECONDS is {settings.WORKER_STALE_SECONDS}, but the worker's "
                f"heartbeat can be {WATCHDOG_WORST_GAP_SECONDS} s apart: /healthz would flap",
                hint="Leave it at 180, or set more than 90.",
                id="darkroom.W001",
            )
        ]
    return []


@register()
def more_pollers_than_workers(app_configs, **kwargs):
    # Each shard's poller keeps a worker busy while its shard has work: with more pollers
    # than workers, some shards would wait for a turn (a handover) before being polled.
    workers = settings.Q_CLUSTER.get("workers", 1)
    if workers < settings.POLLER_SHARDS:
        return [
            Warning(
                f"POLLER_SHARDS is {settings.POLLER_SHARDS} but a cluster has {workers} "
                "workers: some generations would wait seconds for their poller's turn",
                hint="Leave POLLER_SHARDS unset (one per worker), or give each cluster "
                "at least that many workers.",
                id="darkroom.W002",
            )
        ]
    return []


@register()
def a_gateway_call_for_each_poller(app_configs, **kwargs):
    # Each shard's poller gets GATEWAY_MAX_IN_FLIGHT // POLLER_SHARDS calls, but at least
    # one: below one per poller, the installation would exceed the ceiling it was given.
    if settings.GATEWAY_MAX_IN_FLIGHT < settings.POLLER_SHARDS:
        return [
            Warning(
                f"GATEWAY_MAX_IN_FLIGHT is {settings.GATEWAY_MAX_IN_FLIGHT} but there are "
                f"{settings.POLLER_SHARDS} pollers, each of which makes at least one call at "
                f"a time: up to {settings.POLLER_SHARDS} calls may be in flight",
                hint="Set GATEWAY_MAX_IN_FLIGHT to at least POLLER_SHARDS.",
                id="darkroom.W003",
            )
        ]
    return []
