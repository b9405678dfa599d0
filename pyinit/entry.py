"""Every command's entry point: block signals, isolate the interpreter, run the tool.

The rules, in the order they run (see docs/pyinit.md#the-images-python-settings):
1. pyinit (and its personalities) block every signal they handle in the first
   statement, with the built-in `_signal` module: nothing is imported from
   sys.path before that. A signal sent from then on waits in the queue; the
   event loop reads it from its signalfd. The mask pyinit was started with is
   kept and handed to its children (signals.started_with).
2. The interpreter must ignore the image's Python settings, which belong to the
   application: PYTHON* variables, the user site, the script's directory or the
   current directory on sys.path. A launcher that runs `python -I` (the .deb's
   scripts, those `python -m pyinit.launchers` writes) gets that from the
   interpreter itself. Otherwise (the wheel's console scripts, `python -m
   pyinit`) the tool re-executes itself once with `-I` when such a setting is
   present, with the signals still blocked (pending ones survive execve) and
   the environment untouched: the variables reach the children as they were.
3. The re-executed interpreter runs this file as a script and loads the pyinit
   package from this file's directory, so it runs the same code whichever way
   that was found; argv[0] stays the one the user invoked.

No `from __future__` import and nothing but `sys`, `os` (imported by the
interpreter already) and `_signal` (built in) before the block: this module
runs before pyinit knows whether sys.path can be trusted.
"""

import _signal
import sys

# Signals pyinit reads from its signalfd: all but the ones it cannot catch and the
# synchronous faults (signames.handled(); tests/unit/test_entry.py keeps them equal).
_NOT_HANDLED = frozenset(
    {
        _signal.SIGKILL,
        _signal.SIGSTOP,
        _signal.SIGSEGV,
        _signal.SIGBUS,
        _signal.SIGILL,
        _signal.SIGFPE,
        _signal.SIGABRT,
        _signal.SIGTRAP,
        _signal.SIGSYS,
    }
)
# Variables that change nothing pyinit depends on: no re-exec for them.
HARMLESS = frozenset({"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE"})
_MARK = "--pyinit-isolated"  # argv[1] of the re-executed interpreter


# A link to pyinit under one of its other commands' names (runit's `sv`, phusion's
# `setuser`, s6-overlay's `with-contenv`) runs that command, never a second init with
# every service; so does a link in an /etc/init.d directory (sv's LSB mode).
LINKED = {
    "sv": "svctl",
    "svctl": "svctl",
    "setuser": "setuser",
    "pyinit-env": "pyinit-env",
    "with-contenv": "pyinit-env",
    "supervisorctl": "supervisorctl",
    "s6-setuidgid": "setuser",
    "s6-svc": "s6-svc",
    "s6-svstat": "s6-svstat",
}
# Each command's module (its main() takes sys.argv).
MAINS = {
    "pyinit": "pyinit.cli.pyinit",
    "svctl": "pyinit.cli.svctl",
    "setuser": "pyinit.cli.setuser",
    "pyinit-env": "pyinit.cli.pyinit_env",
    "supervisorctl": "pyinit.cli.supervisorctl",
    "s6-svc": "pyinit.cli.s6_svc",
    "s6-svstat": "pyinit.cli.s6_svstat",
}


def pyinit() -> None:
    """`pyinit` (and, by argv[0]'s name, tini, dumb-init, my_init, or one of the
    LINKED commands): never returns. Only an init blocks signals: a command keeps
    the mask it was started with."""
    tool = linked_tool(sys.argv[0])
    _start(tool, _block() if tool == "pyinit" else None)


def linked_tool(argv0: str) -> str:
    """The command a program name runs: a LINKED one, svctl in /etc/init.d, or pyinit."""
    import os

    directory, name = os.path.split(argv0)
    if name in LINKED:
        return LINKED[name]
    if ("/" + directory).endswith("/etc/init.d") and name:
        return "svctl"
    return "pyinit"


def svctl() -> None:
    _start("svctl", None)


def setuser() -> None:
    _start("setuser", None)


def pyinit_env() -> None:
    _start("pyinit-env", None)


def handled() -> "list[int]":
    """The signals blocked at entry (equal to core.signames.handled())."""
    return sorted(int(s) for s in _signal.valid_signals() if s not in _NOT_HANDLED)


def _block() -> "frozenset[int]":
    """Block the handled signals; the mask as it was before."""
    return frozenset(int(s) for s in _signal.pthread_sigmask(_signal.SIG_BLOCK, handled()))


def _start(tool: str, mask: "frozenset[int] | None") -> None:
    if not sys.flags.isolated:
        import os

        if leaks(os.environ, sys.modules.get("site"), sys.path):
            _reexec(tool, mask)
        elif not getattr(sys.flags, "safe_path", False) and sys.path:
            del sys.path[0]  # the script's directory, or the current one for -m
    _run(tool, mask)


def leaks(environ: "dict[str, str]", site: object, path: "list[str]") -> bool:
    """Whether the image's Python settings reach this interpreter: a (non-empty)
    PYTHON* variable other than the harmless ones, or the user site on sys.path."""
    for key, value in environ.items():
        if key.startswith("PYTHON") and value and key not in HARMLESS:
            return True
    user_site = getattr(site, "USER_SITE", None)
    return bool(getattr(site, "ENABLE_USER_SITE", False) and user_site and user_site in path)


def _undo_locale_coercion() -> None:
    """In the C locale Python sets LC_CTYPE=C.UTF-8 in its own environment (PEP 538;
    -I ignores PYTHONCOERCECLOCALE=0): the environment is the application's, so a
    LC_CTYPE that was not in the one pyinit was started with is removed again."""
    import os

    if "LC_CTYPE" not in os.environ:
        return
    try:
        with open("/proc/self/environ", "rb") as f:
            started_with = f.read()
    except OSError:
        return
    if not started_with.startswith(b"LC_CTYPE=") and b"\0LC_CTYPE=" not in started_with:
        del os.environ["LC_CTYPE"]


def interpreter() -> str:
    """The path of the interpreter running now, as a path that keeps its venv ('' if
    unknown). On Linux sys.executable is not the running file but a guess: what
    PYTHONEXECUTABLE says (even under -I), else argv[0], looked up on PATH when it
    has no slash, where another user's `python3` may come first. So it is used only
    when it is the running file (/proc/self/exe); else argv[0] as the interpreter
    got it, if that is; else /proc/self/exe itself (a venv then goes unseen)."""
    import os

    try:
        real = os.stat("/proc/self/exe")
    except OSError:  # no /proc: nothing to check against
        return "" if os.environ.get("PYTHONEXECUTABLE") else sys.executable or ""
    found = [] if os.environ.get("PYTHONEXECUTABLE") else [sys.executable]
    started = (getattr(sys, "orig_argv", None) or [""])[0]  # Python 3.10+
    if "/" in started:
        found.append(os.path.abspath(started))
    for candidate in found:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (real.st_dev, real.st_ino):
            return os.path.abspath(candidate)
    try:
        return os.readlink("/proc/self/exe")
    except OSError:
        return ""


def _reexec(tool: str, mask: "frozenset[int] | None") -> None:
    """Run this tool again in `python -I`; returns only if that cannot be done."""
    import os

    here = os.path.abspath(__file__)
    python = interpreter()  # the running file: not PYTHONEXECUTABLE's, not PATH's
    saved = "-" if mask is None else ",".join(str(s) for s in sorted(mask))
    # PYTHONEXECUTABLE acts under -I too (the venv would be looked for beside the
    # program it names): it is taken out for the exec and put back by _resume
    executable = os.environ.get("PYTHONEXECUTABLE")
    argv = [
        python,
        "-I",
        here,
        _MARK,
        tool,
        saved,
        "-" if executable is None else "=" + executable,
        *sys.argv,
    ]
    _undo_locale_coercion()
    env = dict(os.environ)
    env.pop("PYTHONEXECUTABLE", None)
    try:
        if python and os.path.isfile(here):  # not from a zip, say
            os.execve(python, argv, env)
    except OSError as exc:
        _warn(
            f"cannot re-run {python} -I ({exc.strerror}): running with the image's Python settings"
        )
        return
    _warn(
        "cannot re-run with -I (no sys.executable, or pyinit not in files): running with "
        "the image's Python settings"
    )


def _warn(text: str) -> None:
    try:
        sys.stderr.write(f"pyinit: warning: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _run(tool: str, mask: "frozenset[int] | None") -> None:
    _undo_locale_coercion()
    if mask is not None:
        from pyinit.linux import signals

        signals.started_with = mask
    sys.exit(__import__(MAINS[tool], fromlist=["main"]).main())


def _resume() -> None:
    """In the re-executed interpreter: load pyinit from beside this file, restore
    argv, run the tool."""
    import os

    if sys.argv[1:2] != [_MARK] or len(sys.argv) < 6 or not sys.flags.isolated:
        sys.stderr.write("pyinit: error: entry.py is run by pyinit's entry points only\n")
        sys.exit(2)
    tool, saved, executable = sys.argv[2], sys.argv[3], sys.argv[4]
    mask = None if saved == "-" else frozenset(int(s) for s in saved.split(",") if s)
    if executable.startswith("="):  # the application's, as it was set
        os.environ["PYTHONEXECUTABLE"] = executable[1:]
    del sys.argv[:5]
    util = _import_machinery()
    here = os.path.dirname(os.path.abspath(__file__))
    spec = util.spec_from_file_location(
        "pyinit", os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    if spec is None or spec.loader is None:
        sys.stderr.write("pyinit: error: cannot load the pyinit package beside entry.py\n")
        sys.exit(70)
    package = util.module_from_spec(spec)
    sys.modules["pyinit"] = package
    spec.loader.exec_module(package)
    _run(tool, mask)


class _Machinery:
    """importlib.util's spec_from_file_location and module_from_spec, taken from the
    import system the interpreter has loaded already: importlib.util imports
    contextlib, functools and collections, a few ms of every re-executed command."""

    def __init__(self, external: object, bootstrap: object) -> None:
        self.spec_from_file_location = external.spec_from_file_location  # type: ignore[attr-defined]
        self.module_from_spec = bootstrap.module_from_spec  # type: ignore[attr-defined]


def _import_machinery() -> object:
    external = sys.modules.get("_frozen_importlib_external")
    bootstrap = sys.modules.get("_frozen_importlib")
    if hasattr(external, "spec_from_file_location") and hasattr(bootstrap, "module_from_spec"):
        return _Machinery(external, bootstrap)
    import importlib.util  # another interpreter's import system

    return importlib.util


if __name__ == "__main__":
    _resume()
