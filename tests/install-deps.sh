#!/bin/sh
# install-deps.sh — `make test-deps`: the project's one list of Debian packages lives in
# scripts/install-deps.sh (build, tests, real programs: python3 and its test suite, git,
# sqlite3, gcc/g++, redis-server and redis-tools; valgrind).
exec "$(dirname "$0")/../scripts/install-deps.sh" "$@"
