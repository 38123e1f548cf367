"""``python -m services.producer``"""

from services.producer.app import run
from shared.service import service_main

if __name__ == "__main__":
    service_main("producer", run)
