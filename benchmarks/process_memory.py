"""Peak memory of the current process, for the benchmark scripts."""

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """VmHWM: the peak resident set of this process image (ru_maxrss would carry a parent's peak over exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
