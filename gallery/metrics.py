"""What /metrics reports, in Prometheus text: the pipeline as operators watch it.

Two kinds of figure, both right however many web and worker processes run on however
many hosts, because both come from the database every process shares:

- read from the generations at scrape time: how many in each status, how many in flight,
  the age of the oldest unfinished one (a GROUP BY and a MIN over indexed columns); and
  the month's images and estimated spend from the usage ledger's team total (one row);
- running totals the pollers keep (`Tally`, added to `MetricCounter` rows about once a
  second): gateway answers by call and kind, retries, and a histogram of the time from
  request to stored images. A scrape reads a few dozen rows, however long the history.

prometheus-client writes the text (`generate_latest`); nothing here formats it by hand.
"""

import logging
import threading
import time
from collections import Counter

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from gallery import pixazo
from gallery.models import Generation, MetricCounter, UsageTotal, month_of

log = logging.getLogger("gallery.metrics")

ANSWERS = "darkroom_gateway_answers"
RETRIES = "darkroom_gateway_retries"
STORED = "darkroom_generation_seconds"
CALLS = ("submit", "result")
# Request to stored images, in seconds: a generation takes a few seconds to minutes.
BUCKETS = (2.5, 5, 10, 20, 30, 60, 120, 300, 600)
FLUSH_SECONDS = 1.0
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Tally:
    """Counts one poller makes, added to the database at most once a second (and when it
    ends): one UPDATE per figure that changed, not one per gateway call. Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._amounts = Counter()
        self._flushed = time.monotonic()

    def answer(self, call, kind):
        self._add(ANSWERS, f"call={call},kind={kind}")

    def retry(self, call):
        self._add(RETRIES, f"call={call}")

    def stored(self, seconds):
        for bound in BUCKETS:
            if seconds <= bound:
                self._add(f"{STORED}_bucket", f"le={bound}")
        self._add(f"{STORED}_bucket", "le=+Inf")
        self._add(f"{STORED}_sum", "", seconds)

    def _add(self, name, labels, amount=1):
        with self._lock:
            self._amounts[name, labels] += amount

    def flush_if_due(self):
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()

    def flush(self):
        with self._lock:
            amounts, self._amounts = self._amounts, Counter()
            self._flushed = time.monotonic()
        if not amounts:
            return
        try:
            MetricCounter.add(amounts)
        except DatabaseError:
            log.warning("could not save the pipeline's counters; will try again", exc_info=True)
            with self._lock:
                self._amounts.update(amounts)


class PipelineCollector:
    """A prometheus-client collector that reads the figures anew at each scrape."""

    def collect(self):
        by_status = dict(
            Generation.objects.order_by().values_list("status").annotate(n=Count("pk"))
        )
        generations = GaugeMetricFamily(
            "darkroom_generations", "Generations by status.", labels=["status"]
        )
        for status in Generation.Status:
            generations.add_metric([status.value], by_status.get(status.value, 0))
        yield generations
        yield GaugeMetricFamily(
            "darkroom_generations_in_flight",
            "Generations not finished yet (waiting, at the gateway, or being stored).",
            value=sum(by_status.get(status, 0) for status in Generation.UNFINISHED),
        )
        oldest = Generation.objects.unfinished().aggregate(oldest=Min("requested_at"))["oldest"]
        yield GaugeMetricFamily(
            "darkroom_oldest_unfinished_generation_age_seconds",
            "How long the oldest unfinished generation has waited (0 when none).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0,
        )

        # What the usage ledger counts for this month (its team total: one row).
        month = UsageTotal.objects.filter(scope=UsageTotal.Scope.TEAM, month=month_of()).first()
        yield GaugeMetricFamily(
            "darkroom_month_images",
            "Images sent to the provider this calendar month, less those it failed to make.",
            value=month.images if month else 0,
        )
        yield GaugeMetricFamily(
            "darkroom_month_estimated_spend_dollars",
            "Estimated spend this calendar month, from the price table (USD by default).",
            value=float(month.cost) if month else 0.0,
        )

        counters = {(c.name, c.labels): c.value for c in MetricCounter.objects.all()}
        answers = CounterMetricFamily(
            ANSWERS,
            "Gateway answers by call and kind (accepted: a 2xx understood).",
            labels=["call", "kind"],
        )
        retries = CounterMetricFamily(
            RETRIES,
            "Submits and polls scheduled again after a passing fault.",
            labels=["call"],
        )
        for call in CALLS:
            for kind in pixazo.ANSWER_KINDS:
                answers.add_metric(
                    [call, kind], counters.get((ANSWERS, f"call={call},kind={kind}"), 0)
                )
            retries.add_metric([call], counters.get((RETRIES, f"call={call}"), 0))
        yield answers
        yield retries
        yield HistogramMetricFamily(
            STORED,
            "Seconds from a generation's request to its images stored.",
            buckets=[
                (str(float(bound)), counters.get((f"{STORED}_bucket", f"le={bound}"), 0))
                for bound in BUCKETS
            ]
            + [("+Inf", counters.get((f"{STORED}_bucket", "le=+Inf"), 0))],
            sum_value=counters.get((f"{STORED}_sum", ""), 0),
        )


def exposition():
    """The text a scrape gets."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector())
    return generate_latest(registry)
