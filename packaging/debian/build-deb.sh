#!/bin/sh
# Build dist/pyinit-pid1_VERSION_all.deb: pyinit for Debian's python3, using Debian's
# python3-psutil and python3-yaml. Needs only dpkg-deb (no debhelper). The package is
# named as the distribution (pyinit-pid1); the commands and the module stay pyinit.
# It installs the man pages (packaging/man), svctl's bash completion
# (packaging/completion) and the docs in /usr/share/doc/pyinit-pid1.
#   packaging/debian/build-deb.sh [OUTDIR]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/dist}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

name=pyinit-pid1
doc=$stage/${name}_${version}_all/usr/share/doc/$name
pkg=$stage/${name}_${version}_all
mkdir -p "$pkg/DEBIAN" "$pkg/usr/lib/python3/dist-packages" "$pkg/usr/bin" "$doc" \
  "$pkg/usr/share/man/man8" "$pkg/usr/share/bash-completion/completions"
(cd "$root" && find pyinit -name '*.py' -o -name '*.typed' -o -name '*.schema.json') | while read -r f; do
  install -D -m 0644 "$root/$f" "$pkg/usr/lib/python3/dist-packages/$f"
done
# The commands run Debian's python3 isolated (-I): the image's PYTHONPATH,
# PYTHONHOME, user site, ... belong to the application (pyinit/launchers.py).
# The tree being packaged is imported from $root (isolated: no PYTHONPATH, no site).
python3 -I -c 'import sys; sys.path.insert(0, sys.argv.pop(1)); from pyinit.launchers import main; sys.exit(main())' \
  "$root" --python /usr/bin/python3 --no-check "$pkg/usr/bin" >/dev/null
install -m 0644 "$root/README.md" "$doc/README.md"
cp -r "$root/docs" "$doc/docs"
{ printf 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n'
  printf 'Upstream-Name: %s\n\nFiles: *\nLicense: MIT\n' "$name"
  sed 's/^$/./; s/^/ /' "$root/LICENSE"; } > "$doc/copyright"
for page in "$root"/packaging/man/*.8; do
  gzip -9n < "$page" > "$pkg/usr/share/man/man8/$(basename "$page").gz"
done
install -m 0644 "$root/packaging/completion/svctl.bash" \
  "$pkg/usr/share/bash-completion/completions/svctl"

cat > "$pkg/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: all
Maintainer: pyinit developers <pyinit@localhost>
Depends: python3 (>= 3.9), python3-psutil (>= 5.8), python3-yaml (>= 5.4)
Conflicts: pyinit
Replaces: pyinit
Section: admin
Priority: optional
Description: small PID 1 for containers
 Reaps zombies, forwards signals, runs my_init-style startup scripts and
 supervises runit-style services (/etc/service) with svctl to control them.
CONTROL
cat > "$pkg/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if command -v py3compile >/dev/null 2>&1; then py3compile -p pyinit-pid1; fi
mkdir -p /etc/service /etc/my_init.d /etc/container_environment
POSTINST
cat > "$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if command -v py3clean >/dev/null 2>&1; then py3clean -p pyinit-pid1; else
  find /usr/lib/python3/dist-packages/pyinit -name __pycache__ -prune -exec rm -rf {} +; fi
PRERM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm"
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$pkg" "$out/${name}_${version}_all.deb" >/dev/null
echo "$out/${name}_${version}_all.deb"
