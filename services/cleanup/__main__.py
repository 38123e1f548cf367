"""``python -m services.cleanup``"""

from services.cleanup.app import run
from shared.service import service_main

if __name__ == "__main__":
    service_main("cleanup", run)
