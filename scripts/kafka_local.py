"""`up | down | status` for a local Apache Kafka broker (backflush_shared.local_kafka); `make kafka-up/down`."""

from __future__ import annotations

import sys

from backflush_shared.local_kafka import main

if __name__ == "__main__":
    sys.exit(main())
