import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll until a real worker has done its part (True), or give up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
