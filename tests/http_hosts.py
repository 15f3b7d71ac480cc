"""What the tests' own HTTP hosts (image stores, slow servers) have in common."""

import sys
from http.server import ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    """A threading HTTP server that takes a client hanging up in its stride.

    Clients here refuse bodies part-way and workers are killed mid-download on purpose; the
    standard server would print a traceback on stderr for each such broken pipe.
    """

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
