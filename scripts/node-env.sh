# Sourced by the scripts: puts the Node that scripts/setup installed under
# .tools/ (when the machine had no Node 20) first on the PATH.
mtless_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -x "$mtless_repo/.tools/node/bin/node" ]; then
  PATH="$mtless_repo/.tools/node/bin:$PATH"
  export PATH
fi
