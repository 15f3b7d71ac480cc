"""The web server's configuration, the same wherever Darkroom serves pages: the Dockerfile's
CMD, `make run`'s web process (the Procfile) and the benchmarks.

    gunicorn --config python:config.gunicorn --bind 0.0.0.0:8000 config.wsgi

WEB_CONCURRENCY processes of WEB_THREADS threads each (gunicorn's gthread worker). Pages
take a thread for the milliseconds they render; a request that waits for generations to
change (the studio's live updates; an OpenAI-style API call waiting for its images, see
gallery/api/openai.py; both through gallery.changes) holds its thread while it waits, but
no CPU and no query: at most WAITING_REQUESTS_PER_PROCESS of them wait in a process (by
default all but an eighth of its threads: 56 of 64), so the other threads always serve the
rest of the site. A page's connection is kept alive to one process, so the processes'
shares of waiting pages are uneven: the cap is per process, and generous. Why threads and
not an ASGI worker: see README, "How much one machine carries".
"""

import os
import signal

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = max(2, int(os.environ.get("WEB_THREADS", "64")))
# Logs to stdout, with the tokens of share, invitation and reset links redacted.
accesslog = "-"
logger_class = "gallery.redaction.AccessLog"
# An idle kept-alive connection costs no thread in gthread; pages ask again within a second.
keepalive = 5
# On a graceful stop waiting requests answer at once (below), so this only bounds the rest.
graceful_timeout = 10


def on_starting(server):
    # The master goes when whatever started it goes (`make run`'s launcher, a shell); its
    # workers notice their parent changed and follow.
    from gallery.processes import die_with_parent

    die_with_parent()


def post_worker_init(worker):
    # A graceful stop (SIGTERM) first wakes every request waiting for generations: each
    # answers now (its page asks again, of another process) instead of holding the stop up.
    from gallery import changes  # here, not in the handler: a second signal may come

    def stop(signum, frame):
        changes.stop_waiting()
        worker.handle_exit(signum, frame)

    signal.signal(signal.SIGTERM, stop)
