import contextlib
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gallery.simulator import GatewaySimulator, SimulatorConfig


def share(value):
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Run the Pixazo gateway simulator (GPT-Image 1.5 contract) until interrupted."

    def add_arguments(self, parser):
        defaults = SimulatorConfig(api_key="")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.SIMULATOR_PORT)
        parser.add_argument("--api-key", default=settings.SIMULATOR_API_KEY)
        parser.add_argument("--queue-seconds", type=float, default=defaults.queue_seconds)
        parser.add_argument("--processing-seconds", type=float, default=defaults.processing_seconds)
        parser.add_argument("--fail-marker", default=defaults.fail_marker)
        parser.add_argument("--rate-429", type=share, default=0.0, help="share of 429 answers")
        parser.add_argument("--retry-after", type=float, default=defaults.retry_after_seconds)
        parser.add_argument("--rate-500", type=share, default=0.0, help="share of 500 answers")
        parser.add_argument(
            "--rate-malformed", type=share, default=0.0, help="share of 200s that are not JSON"
        )
        parser.add_argument("--rate-slow", type=share, default=0.0, help="share of slow answers")
        parser.add_argument("--slow-seconds", type=float, default=5.0)
        parser.add_argument(
            "--image-base-url", default=None, help="storage host prefix for image URLs"
        )
        parser.add_argument(
            "--submit-429-every", type=int, default=0, help="a 429 on every n-th submit"
        )
        parser.add_argument(
            "--result-500-every", type=int, default=0, help="a 500 on every n-th result poll"
        )
        parser.add_argument(
            "--answer-latency", type=float, default=0.0, help="seconds every answer takes"
        )
        parser.add_argument(
            "--unknown-for",
            type=float,
            default=0.0,
            help="seconds after a submit during which polls answer 404",
        )
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--drawing-processes",
            type=int,
            default=2,
            help="processes that draw images, so drawing never slows answers (0: threads)",
        )

    def handle(self, *args, **options):
        config = SimulatorConfig(
            api_key=options["api_key"],
            queue_seconds=options["queue_seconds"],
            processing_seconds=options["processing_seconds"],
            fail_marker=options["fail_marker"],
            rate_429=options["rate_429"],
            retry_after_seconds=options["retry_after"],
            rate_500=options["rate_500"],
            rate_malformed=options["rate_malformed"],
            rate_slow=options["rate_slow"],
            slow_seconds=options["slow_seconds"],
            image_base_url=options["image_base_url"],
            seed=options["seed"],
            submit_429_every=options["submit_429_every"],
            result_500_every=options["result_500_every"],
            answer_latency_seconds=options["answer_latency"],
            unknown_for_seconds=options["unknown_for"],
            drawing_processes=options["drawing_processes"],
        )
        simulator = GatewaySimulator(config)
        try:
            base_url = simulator.bind(options["host"], options["port"])
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from None
        self.stdout.write(f"Gateway simulator listening on {base_url}")
        self.stdout.flush()
        # honcho and process managers stop it with SIGTERM: unwind like Ctrl+C, so the
        # drawing processes are shut down with it instead of being orphaned.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            simulator.serve_forever()
