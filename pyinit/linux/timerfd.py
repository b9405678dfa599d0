"""A wall-clock timerfd through ctypes: one absolute CLOCK_REALTIME expiry that the
kernel cancels when someone sets the clock (TFD_TIMER_CANCEL_ON_SET), so a
scheduler sleeps until its next run and still hears of a clock jump."""

from __future__ import annotations

import ctypes
import errno
import os

from pyinit.linux.libc import check, libc

CLOCK_REALTIME = 0
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2
FIRED, CLOCK_SET, NOTHING = "fired", "clock-set", "nothing"


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class WallTimer:
    """One CLOCK_REALTIME timerfd: arm(at) for an absolute epoch time, read() when the
    fd is readable. Armed, it is cancelled by any setting of the clock."""

    def __init__(self) -> None:
        self._libc = libc()
        self.fd: int = check(
            self._libc.timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC),
            "timerfd_create",
        )

    def arm(self, at: float) -> None:
        """Expire at `at` (epoch seconds; in the past: at once)."""
        at = max(at, 1e-9)
        spec = _Itimerspec()
        spec.it_value.tv_sec = int(at)
        spec.it_value.tv_nsec = min(int((at - int(at)) * 1e9), 999_999_999)
        flags = TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET
        check(
            self._libc.timerfd_settime(self.fd, flags, ctypes.byref(spec), None), "timerfd_settime"
        )

    def disarm(self) -> None:
        check(
            self._libc.timerfd_settime(self.fd, 0, ctypes.byref(_Itimerspec()), None),
            "timerfd_settime",
        )

    def read(self) -> str:
        """FIRED, CLOCK_SET (the clock was set: the timer is cancelled, arm it again) or
        NOTHING (a spurious wake-up)."""
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return NOTHING
        except OSError as exc:
            if exc.errno == errno.ECANCELED:
                return CLOCK_SET
            raise
        return FIRED

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
