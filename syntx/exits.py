"""The exit codes of every ``syntx`` command — one table, mirrored in the README ("Exit codes").

| code | name            | meaning                                                                    |
|------|-----------------|----------------------------------------------------------------------------|
| 0    | ``OK``          | done (``status --watch`` and ``logs -f`` also end with 0 on Ctrl-C)        |
| 1    | ``NOTHING_DONE``| the command ran but did nothing or found nothing, a tick was not stored,   |
|      |                 | or a service answered that it could not answer (its reason printed)        |
| 2    | ``USAGE``       | a wrong command line: unknown option, schedule, job id, unreadable file    |
| 2    | ``CONFIG``      | a configuration error (file, key, ``SYNTX_*`` variable, wrapper, format)   |
| 3    | ``NOT_REACHABLE``| NATS cannot be reached, or no service answered                            |
| 4    | ``IN_USE``      | another process holds the data directory or a port ``syntx up`` needs      |
| 130  | ``INTERRUPTED`` | Ctrl-C during a command                                                    |

``syntx status --check`` exits by the system's health instead, by the Nagios plugin convention (``CHECK``):
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the monitor did not answer; a wrong command line is still 2).
"""

from __future__ import annotations

from shared.service import CONFIG_EXIT_CODE

OK = 0
NOTHING_DONE = 1
USAGE = 2
CONFIG = CONFIG_EXIT_CODE
NOT_REACHABLE = 3
IN_USE = 4
INTERRUPTED = 130
CHECK = {"OK": 0, "WARNING": 1, "CRITICAL": 2}  # `syntx status --check`: the Nagios plugin convention
CHECK_UNKNOWN = 3
