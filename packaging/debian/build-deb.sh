#!/bin/sh
# Build dist/pyinit_VERSION_all.deb: pyinit for Debian's python3, using Debian's
# python3-psutil and python3-yaml. Needs only dpkg-deb (no debhelper).
#   packaging/debian/build-deb.sh [OUTDIR]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/dist}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

pkg=$stage/pyinit_${version}_all
mkdir -p "$pkg/DEBIAN" "$pkg/usr/lib/python3/dist-packages" "$pkg/usr/bin" "$pkg/usr/share/doc/pyinit"
(cd "$root" && find pyinit -name '*.py' -o -name '*.typed') | while read -r f; do
  install -D -m 0644 "$root/$f" "$pkg/usr/lib/python3/dist-packages/$f"
done
# The commands run Debian's python3 isolated (-I): the image's PYTHONPATH,
# PYTHONHOME, user site, ... belong to the application (pyinit/launchers.py).
# The tree being packaged is imported from $root (isolated: no PYTHONPATH, no site).
python3 -I -c 'import sys; sys.path.insert(0, sys.argv.pop(1)); from pyinit.launchers import main; sys.exit(main())' \
  "$root" --python /usr/bin/python3 --no-check "$pkg/usr/bin" >/dev/null
install -m 0644 "$root/README.md" "$pkg/usr/share/doc/pyinit/README.md"
cp -r "$root/docs" "$pkg/usr/share/doc/pyinit/docs"
printf 'pyinit %s\nLicense: MIT\n' "$version" > "$pkg/usr/share/doc/pyinit/copyright"

cat > "$pkg/DEBIAN/control" <<CONTROL
Package: pyinit
Version: $version
Architecture: all
Maintainer: pyinit developers <pyinit@localhost>
Depends: python3 (>= 3.9), python3-psutil (>= 5.8), python3-yaml (>= 5.4)
Section: admin
Priority: optional
Description: small PID 1 for containers
 Reaps zombies, forwards signals, runs my_init-style startup scripts and
 supervises runit-style services (/etc/service) with svctl to control them.
CONTROL
cat > "$pkg/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if command -v py3compile >/dev/null 2>&1; then py3compile -p pyinit; fi
mkdir -p /etc/service /etc/my_init.d /etc/container_environment
POSTINST
cat > "$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if command -v py3clean >/dev/null 2>&1; then py3clean -p pyinit; else
  find /usr/lib/python3/dist-packages/pyinit -name __pycache__ -prune -exec rm -rf {} +; fi
PRERM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm"
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$pkg" "$out/pyinit_${version}_all.deb" >/dev/null
echo "$out/pyinit_${version}_all.deb"
