"""``python -m services.scheduler``"""

from services.scheduler.app import run
from shared.service import service_main

if __name__ == "__main__":
    service_main("scheduler", run)
