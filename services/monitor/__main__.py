"""``python -m services.monitor``"""

from services.monitor.app import run
from shared.service import service_main

if __name__ == "__main__":
    service_main("monitor", run)
