"""linux/rootfs.py: image paths resolved inside the tree, never on the host; and an
image's passwd and group files (linux/users.py AccountFiles)."""

from __future__ import annotations

import os
from pathlib import Path

from pyinit.linux import rootfs, users


def test_links_resolve_inside_the_root(tmp_path: Path):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/sh").write_text("")
    os.symlink("usr/bin", tmp_path / "bin")  # relative
    os.symlink("/usr/bin/sh", tmp_path / "usr/bin/abs")  # absolute: inside the root
    os.symlink("../../../../../usr/bin/sh", tmp_path / "usr/bin/up")  # .. stops at the root
    os.symlink("/etc/passwd", tmp_path / "usr/bin/host")  # exists on the host only
    root = rootfs.Root(str(tmp_path))
    sh = str(tmp_path / "usr/bin/sh")
    assert root.path("/bin/sh") == sh
    assert root.path("/usr/bin/abs") == sh
    assert root.path("/bin/up") == sh
    assert root.path("/usr/bin/host") == str(tmp_path / "etc/passwd")
    assert not os.path.exists(root.path("/usr/bin/host"))
    assert root.path("/no/such/file") == str(tmp_path / "no/such/file")
    assert root.path("/../..//bin/./sh") == sh


def test_a_link_loop_resolves_to_nothing(tmp_path: Path):
    os.symlink("/b", tmp_path / "a")
    os.symlink("/a", tmp_path / "b")
    root = rootfs.Root(str(tmp_path))
    assert root.path("/a/x") == rootfs.LOOPED
    assert not os.path.lexists(root.path("/a"))


def test_without_a_root_paths_are_unchanged():
    assert rootfs.Root().path("/etc/../etc/passwd") == "/etc/../etc/passwd"


def test_account_files_resolve_as_the_system_databases_do():
    db = users.AccountFiles(
        "root:x:0:0:root:/root:/bin/sh\n# note\napp:x:1000:1000::/home/app:/bin/sh\n"
        "broken:x:notanumber:1::/:/bin/sh\n+nis::::::\n",
        "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\n",
    )
    app = users.resolve("app", db)
    assert (app.uid, app.gid, app.groups, app.name, app.home) == (
        1000,
        1000,
        (50, 1000),
        "app",
        "/home/app",
    )
    assert users.resolve("app:staff", db).gid == 50
    assert users.resolve("1000", db).name == "app"
    assert users.resolve("4242:50", db).groups == (50,)  # no entry: numbers stand
    for spec, message in (
        ("broken", "unknown user 'broken'"),
        ("app:nogroup", "unknown group 'nogroup'"),
        ("nis", "unknown user 'nis'"),
    ):
        try:
            users.resolve(spec, db)
        except users.PrivilegeError as exc:
            assert str(exc) == message
        else:
            raise AssertionError(spec)
