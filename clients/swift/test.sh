#!/usr/bin/env bash
# Hand-written (not generated): compiles the Swift SDK and its XCTest tests
# with swiftc alone (no package manager: Linux machines without a Swift
# toolchain use ../shared/tools/swift/swiftc) and runs the tests.
# On a Mac, `swift test` in this directory does the same.
#
#   clients/swift/test.sh                        unit tests (live tests skip)
#   KILN_URL=http://localhost:8080/graphql clients/swift/test.sh   live tests too
#   clients/swift/test.sh KilnTests.SubscriptionTests   one class (or .../testName)
#   clients/swift/test.sh --typecheck F.swift    also type-check F against the module
#
# Steps: the package in Swift 6 language mode (library + module; any error
# or warning fails), a Swift 5 mode type-check (any warning fails), where
# there is no Security framework (Linux) a type-check against a stand-in
# for it (Tests/SecurityStub), so that the Keychain session store is
# checked too, the tests linked against the library, then the run. Builds are cached under
# ${KILN_SWIFT_CACHE:-~/.cache/kiln/swift-build}, keyed by the sha256 of the
# compiler's version, this script and the sources, so an unchanged package
# or test suite is not compiled again. Environment: SWIFTC (the compiler),
# KILN_URL, KILN_REQUIRE_LIVE=1 (live tests fail instead of skipping).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
cd "$here"

if [ -z "${SWIFTC:-}" ]; then
  if command -v swiftc >/dev/null 2>&1; then SWIFTC=$(command -v swiftc)
  else SWIFTC="$here/../../../shared/tools/swift/swiftc"; fi
fi
[ -x "$SWIFTC" ] || { echo "test.sh: no Swift compiler at $SWIFTC (set SWIFTC)" >&2; exit 127; }

typecheck=()
filters=()
while [ $# -gt 0 ]; do
  case "$1" in
    --typecheck) typecheck+=("$2"); shift 2 ;;
    *) filters+=("$1"); shift ;;
  esac
done

cache="${KILN_SWIFT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln/swift-build}"
mkdir -p "$cache"
trap 'rm -rf "$cache"/tmp.$$.*' EXIT

# install TMP DIR: moves a finished build into place (another run may have
# put the same build there first: then it is the same, keep that one).
install() { if [ -e "$2" ]; then rm -rf "$1"; else mv "$1" "$2"; fi; }
case "$(uname -s)" in
  Darwin) libfile=libKiln.dylib ;;
  *) libfile=libKiln.so ;;
esac

# swiftc prints a harmless note on every run with the lite toolchain.
quiet() { grep -v 'Unable to locate libSwiftScan' || true; }

# run_swiftc ARGS...: runs the compiler; any diagnostic fails the build.
run_swiftc() {
  local out rc=0
  out=$("$SWIFTC" "$@" 2>&1) || rc=$?
  out=$(printf '%s\n' "$out" | quiet)
  if [ $rc -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    echo "test.sh: swiftc $* failed (exit $rc)" >&2
    return 1
  fi
}

hash_of() { cat "$@" | sha256sum | cut -c1-24; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# Keep the newest few builds of a kind.
prune() { ls -dt "$cache"/"$1"-* 2>/dev/null | tail -n +5 | while read -r d; do rm -rf "$d"; done; }

version=$("$SWIFTC" -version 2>&1 | quiet)
sources=(Sources/Kiln/*.swift)
tests=(Tests/KilnTests/*.swift)
stub=Tests/SecurityStub/Security.swift

# 1. The package: Swift 6 library and module, Swift 5 type-check.
libkey=$( { echo "$version"; cat "$self"; } | cat - "$stub" "${sources[@]}" | sha256sum | cut -c1-24)
lib="$cache/lib-$libkey"
if [ -f "$lib/ok" ]; then
  echo "kiln-swift: package unchanged, compiled before ($lib)"
else
  start=$(now)
  tmp=$(mktemp -d "$cache/tmp.$$.XXXXXX")
  run_swiftc -emit-library -emit-module -module-name Kiln -swift-version 6 -warnings-as-errors \
    -emit-module-path "$tmp/Kiln.swiftmodule" -o "$tmp/$libfile" "${sources[@]}"
  run_swiftc -typecheck -module-name Kiln -swift-version 5 -warnings-as-errors "${sources[@]}"
  # KeychainSessionStore is compiled only where Security exists: without it,
  # type-check the package against the stand-in (both language modes).
  if [ "$(uname -s)" != Darwin ]; then
    mkdir -p "$tmp/security"
    run_swiftc -emit-module -parse-as-library -module-name Security -swift-version 5 \
      -emit-module-path "$tmp/security/Security.swiftmodule" "$stub"
    grep -q 'class KeychainSessionStore' "${sources[@]}" || { echo "test.sh: no KeychainSessionStore in the sources" >&2; exit 1; }
    run_swiftc -typecheck -module-name Kiln -swift-version 6 -warnings-as-errors -I "$tmp/security" "${sources[@]}"
    run_swiftc -typecheck -module-name Kiln -swift-version 5 -warnings-as-errors -I "$tmp/security" "${sources[@]}"
    keychain=" and the Keychain store against a Security stand-in"
  fi
  touch "$tmp/ok"
  install "$tmp" "$lib"
  echo "kiln-swift: package compiled (Swift 6 library, Swift 5 type-check${keychain:-}) in $(since "$start")"
  prune lib
fi

# Code that uses the SDK (README examples): errors fail, warnings (unused
# values in snippets) do not.
for f in "${typecheck[@]+"${typecheck[@]}"}"; do
  start=$(now)
  rc=0
  out=$("$SWIFTC" -typecheck -swift-version 6 -I "$lib" "$f" 2>&1) || rc=$?
  if [ $rc -ne 0 ]; then printf '%s\n' "$out" | quiet >&2; echo "test.sh: $f does not type-check" >&2; exit 1; fi
  echo "kiln-swift: type-checked $f in $(since "$start")"
done

# 2. The tests, with a runner listing every test (no test discovery without
# the package manager): each `final class X: XCTestCase` and its
# `func testY()`.
runner() {
  echo "// Generated by clients/swift/test.sh: the tests of Tests/KilnTests."
  echo "import XCTest"
  local classes=() f cls
  for f in "${tests[@]}"; do
    awk '
      /^final class [A-Za-z0-9_]+: XCTestCase/ {
        cls = $3; sub(":", "", cls)
        print "extension " cls " {\n    static var allTests: [(String, (" cls ") -> () throws -> Void)] {\n        ["
        open = 1; next
      }
      open && /^}/ { print "        ]\n    }\n}"; open = 0 }
      open && /^    func test[A-Za-z0-9_]*\(\)/ {
        name = $2; sub(/\(.*/, "", name)
        if ($0 ~ /\) async/) print "            (\"" name "\", asyncTest(" name ")),"
        else print "            (\"" name "\", " name "),"
      }' "$f"
    while read -r cls; do classes+=("$cls"); done < <(sed -nE 's/^final class ([A-Za-z0-9_]+): XCTestCase.*/\1/p' "$f")
  done
  echo "XCTMain(["
  for cls in "${classes[@]}"; do echo "    testCase($cls.allTests),"; done
  echo "])"
}

testkey=$( { echo "$libkey"; } | cat - "${tests[@]}" | sha256sum | cut -c1-24)
bin="$cache/tests-$testkey"
if [ -f "$bin/ok" ]; then
  echo "kiln-swift: tests unchanged, compiled before ($bin)"
else
  start=$(now)
  tmp=$(mktemp -d "$cache/tmp.$$.XXXXXX")
  runner > "$tmp/main.swift"
  run_swiftc -module-name KilnTests -swift-version 6 -I "$lib" -L "$lib" -lKiln -Xlinker -rpath -Xlinker "$lib" \
    -o "$tmp/kiln-tests" "${tests[@]}" "$tmp/main.swift"
  touch "$tmp/ok"
  install "$tmp" "$bin"
  echo "kiln-swift: tests compiled in $(since "$start")"
  prune tests
fi
echo "kiln-swift: $(grep -c 'testCase(' "$bin/main.swift") test classes, $(grep -c '^            ("test' "$bin/main.swift") tests"

# 3. Run.
exec "$bin/kiln-tests" "${filters[@]+"${filters[@]}"}"
