"""``python3 -m demo_target``: serve until SIGTERM/SIGINT. Settings come from the environment:

DEMO_HOST (127.0.0.1; 0.0.0.0 in the image), DEMO_PORT (8080), DEMO_TRAFFIC_RPS (0 = off),
DEMO_SELF_PROBE_INTERVAL_S (5; 0 = off), DEMO_HANG_MAX_S (60), DEMO_WORK_ITERATIONS (10000).
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

from demo_target.app import ConfigError, DemoApp, DemoConfig
from demo_target.traffic import SelfProbe, TrafficGenerator


def _terminate(signum: int, frame: FrameType | None) -> None:
    # As PID 1 in a container SIGTERM would otherwise be ignored and `docker stop` would wait
    # for its timeout and SIGKILL.
    raise SystemExit(0)


def main() -> int:
    logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log = logging.getLogger("demo_target")
    try:
        config = DemoConfig.from_env()
    except ConfigError as exc:
        log.error("bad configuration: %s", exc)
        return 2
    app = DemoApp(config)
    loops: list[TrafficGenerator | SelfProbe] = []
    if config.traffic_rps > 0:
        loops.append(TrafficGenerator(app, config.traffic_rps))
    if config.self_probe_interval_s > 0:
        loops.append(SelfProbe(app, config.self_probe_interval_s))
    signal.signal(signal.SIGTERM, _terminate)
    log.info("listening on %s:%d traffic_rps=%g self_probe_interval_s=%g", config.host,
             app.port, config.traffic_rps, config.self_probe_interval_s)
    for loop in loops:
        loop.start()
    try:
        app.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        log.info("shutting down")
        app.faults.clear()
        app.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
