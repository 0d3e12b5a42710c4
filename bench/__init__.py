"""`make bench`: our three services against a chain of raw aiokafka relays on the same broker (issue 6).

- `run.py`: the command (`python -m bench.run --help`): runs both, prints the table, writes JSON, PNG and docs;
- `ours.py`: the three services as processes, N orders of both flows, the driver that plays shop floor and holder;
- `baseline.py`: the raw relay chain (and `python -m bench.baseline relays ...`, one relay process);
- `procstats.py`: CPU seconds and peak memory of a process from /proc, and what machine this is;
- `profiling.py`: py-spy attached to the services, and its samples summed into top-ten lists;
- `report.py`: percentiles, the terminal table, the JSON file, the plot and docs/benchmarks.md.
"""
