#!/usr/bin/env bash
# Installs code-server (a real VS Code with a Node extension host) into a cache folder for the
# end-to-end tests and `npm run serve`, the way @vscode/test-electron caches VS Code in .vscode-test/.
# Idempotent: a second call returns at once. Kept out of the project's dependencies because
# code-server's postinstall needs Node 24 and native build deps:
#   apt-get install -y libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev
# Prints nothing but progress; the code-server binary ends up in
#   $RLAB_CODE_SERVER_DIR/node_modules/.bin/code-server
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${RLAB_CODE_SERVER_VERSION:-4.139.1}"
NODE_MAJOR=24
DIR="${RLAB_CODE_SERVER_DIR:-$PWD/.vscode-test/code-server-$VERSION}"
MARKER="$DIR/.installed"

if [[ -f "$MARKER" && -x "$DIR/node_modules/.bin/code-server" && -x "$DIR/node/node_modules/node/bin/node" ]]; then
  echo "code-server $VERSION already installed in $DIR"
  exit 0
fi

mkdir -p "$DIR/node"
# Fresh package.json files so npm installs into these folders and not into the project.
[[ -f "$DIR/node/package.json" ]] || echo '{"name":"rlab-node24","private":true}' > "$DIR/node/package.json"
[[ -f "$DIR/package.json" ]] || echo '{"name":"rlab-code-server","private":true}' > "$DIR/package.json"

if [[ ! -x "$DIR/node/node_modules/node/bin/node" ]]; then
  echo "Installing Node $NODE_MAJOR for code-server into $DIR/node …"
  (cd "$DIR/node" && npm install --no-audit --no-fund --loglevel=error "node@$NODE_MAJOR")
fi
NODE_BIN="$DIR/node/node_modules/node/bin"
# Node 24's headers, for code-server's native modules (the user's ~/.npmrc may point elsewhere).
HEADERS="$(cd "$DIR/node/node_modules/node/node_modules" && echo "$PWD"/node-linux-*)"
"$NODE_BIN/node" --version

echo "Installing code-server $VERSION (about 3 minutes) …"
(
  cd "$DIR"
  export PATH="$NODE_BIN:$PATH"
  export npm_config_nodedir="$HEADERS"
  # Run from `npm test`, the parent npm exports its own user agent ("node/v20") and node path;
  # code-server's postinstall reads the Node version from the user agent, so drop the parent's.
  unset npm_config_user_agent npm_node_execpath NODE
  npm install --no-audit --no-fund --loglevel=error "code-server@$VERSION"
)
"$NODE_BIN/node" "$DIR/node_modules/code-server/out/node/entry.js" --version
touch "$MARKER"
echo "code-server $VERSION installed in $DIR"
