#!/usr/bin/env python
import os
import sys

# The launchers (`make run`'s run_procfile, run_worker) note SIGINT and SIGTERM from here
# on, before the Django imports: a signal that lands during an import must not be lost.
if sys.argv[1:2] in (["run_procfile"], ["run_worker"]):
    from gallery.processes import stop_signals

    stop_signals()


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
