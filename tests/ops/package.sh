#!/usr/bin/env bash
# package.sh SOURCE_DIR BUILD_DIR: what an ops team gets from `cmake --install`
# and from the .deb. Run by ctest as ops.package (release build only).
#  1. cmake --install BUILD_DIR into a temp prefix; the installed linkd runs and
#     accepts the installed rules; the unit, defaults file and docs are there.
#  2. configure a package build (prefix /usr), cpack -G DEB, and inspect the
#     package: runtime dependencies, files, conffiles, maintainer scripts; the
#     binaries extracted from it run.
# Every step is bounded; everything lives in one temp dir, removed at exit.
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
tmp=$(mktemp -d /tmp/linkd-package-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "package.sh: FAIL: $*" >&2; exit 1; }
step() { echo "package.sh: $*" >&2; }
b() { timeout --kill-after=10 900 "$@"; }

step "install into a temp prefix"
b cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
p=$tmp/prefix
for f in bin/linkd bin/linkctl bin/linkload etc/default/linkd lib/systemd/system/linkd.service \
         share/doc/linkd/README.md share/doc/linkd/OPERATIONS.md share/doc/linkd/SECURITY.md \
         share/doc/linkd/examples/redis.conf share/doc/linkd/examples/redis-linkd.acl \
         share/linkd/monitoring/linkd-alerts.yml share/linkd/monitoring/linkd-dashboard.json; do
    [ -e "$p/$f" ] || fail "installed tree has no $f"
done
ls "$p"/etc/linkd/rules/*.yaml >/dev/null 2>&1 || fail "no rules under etc/linkd/rules"
"$p/bin/linkd" --version | grep -q '^linkd ' || fail "installed linkd --version"
"$p/bin/linkd" --check --rules "$p/etc/linkd/rules" >/dev/null ||
    fail "installed linkd rejects the installed rules"
"$p/bin/linkctl" --help >/dev/null 2>&1 || fail "installed linkctl --help"

step "configure and build a package tree (prefix /usr)"
b cmake -S "$src" -B "$tmp/deb" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DLINKD_TESTS=OFF >/dev/null
b cmake --build "$tmp/deb" -j "${JOBS:-2}" >/dev/null
step "cpack -G DEB"
(cd "$tmp/deb" && b cpack -G DEB >/dev/null) || fail "cpack"
deb=$(ls "$tmp"/deb/linkd_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || fail "no .deb produced"
step "inspect $(basename "$deb")"
depends=$(dpkg-deb -f "$deb" Depends)
echo "  Depends: $depends" >&2
for lib in libuv1 libnng1 libhiredis0.14 libprotobuf-c1 libfyaml0 libsystemd0 libwebsockets17 \
           libwebsockets-evlib-uv libc6 adduser; do
    grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/linkd ./usr/bin/linkctl ./usr/bin/linkload ./etc/default/linkd \
         ./etc/linkd/rules/routes.yaml ./usr/lib/systemd/system/linkd.service \
         ./usr/share/doc/linkd/OPERATIONS.md; do
    grep -q " $f\$" <<<"$contents" || fail "package lacks $f"
done
mkdir "$tmp/ctl"
dpkg-deb -e "$deb" "$tmp/ctl"
for f in postinst postrm conffiles; do [ -s "$tmp/ctl/$f" ] || fail "control has no $f"; done
grep -qx /etc/linkd/rules/routes.yaml "$tmp/ctl/conffiles" || fail "rules are not conffiles"
grep -qx /etc/default/linkd "$tmp/ctl/conffiles" || fail "/etc/default/linkd is not a conffile"
grep -q 'adduser --system' "$tmp/ctl/postinst" || fail "postinst does not create the linkd user"
sh -n "$tmp/ctl/postinst" && sh -n "$tmp/ctl/postrm" || fail "maintainer script syntax"
if [ "$(id -u)" = 0 ]; then
    # What `apt-get install ./linkd.deb` would do here, without doing it.
    dpkg --dry-run -i "$deb" >"$tmp/dry-run.out" 2>&1 ||
        { cat "$tmp/dry-run.out" >&2; fail "dpkg --dry-run -i: dependencies not satisfiable"; }
fi
dpkg-deb -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/linkd" --check --rules "$tmp/root/etc/linkd/rules" >/dev/null ||
    fail "packaged linkd rejects the packaged rules"
step "ok: $(basename "$deb"), $(stat -c %s "$deb") bytes"
