from django.conf import settings
from django.core.checks import Error, register


@register()
def q_cluster_retry_exceeds_timeout(app_configs, **kwargs):
    # django-q2 hands a task to a second worker once `retry` passes: it must outlast `timeout`.
    conf = settings.Q_CLUSTER
    if conf.get("retry", 60) <= conf.get("timeout", 60):
        return [
            Error("Q_CLUSTER['retry'] must be larger than Q_CLUSTER['timeout']", id="darkroom.E001")
        ]
    return []
