# Sourced by the other scripts. Toolchains installed per user (rustup, Go, pyenv) are put on the PATH
# by interactive shell profiles only; CI runs a non-interactive bash, so make sure they are found.
for d in "$HOME/.cargo/bin" /usr/local/go/bin "$HOME/go/bin" "$HOME/.pyenv/shims"; do
  if [[ -d $d && ":$PATH:" != *":$d:"* ]]; then PATH="$d:$PATH"; fi
done
export PATH
