"""Main command of the forward scenario: writes "R" to the fifo argv[1] when ready and
"." each time SIGUSR1 arrives."""

import os
import signal
import sys

fd = os.open(sys.argv[1], os.O_WRONLY)
signal.signal(signal.SIGUSR1, lambda *_: os.write(fd, b"."))
os.write(fd, b"R")
while True:
    signal.pause()
